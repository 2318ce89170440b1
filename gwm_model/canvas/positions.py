"""From per-field data to canvas positions: which value slot feeds which (position, channel).

A field occupies ``h*w`` positions of the layout and ``k`` value slots of a canvas row. A scalar
field (``k == 1``) is broadcast to all its positions. A vector field spreads its slots over its
positions in order, ``c = ceil(k / (h*w))`` consecutive slots per position (a 384-d embedding on a
4x8 footprint puts 12 channels on each position), zero-padded at the end. The position tensors
have ``C`` channels, the largest ``c`` of any field; with only scalar fields ``C == 1`` and the
channel axis is dropped. Empty positions get the fill value. Works on numpy arrays and torch
tensors alike (any leading batch/time axes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from gwm_model.canvas.layout import CanvasLayout


def _gather_last(x: Any, index: np.ndarray, fill: float) -> Any:
    """``x[..., index]`` where index ``n`` (one past the end of the last axis) reads ``fill``."""
    if type(x).__module__.startswith("torch"):
        import torch

        padded = torch.cat([x, x.new_full((*x.shape[:-1], 1), fill)], dim=-1)
        return padded[..., torch.as_tensor(index, device=x.device)]
    x = np.asarray(x)
    padded = np.concatenate([x, np.full((*x.shape[:-1], 1), fill, dtype=x.dtype)], axis=-1)
    return padded[..., index]


@dataclass(frozen=True)
class SlotPositions:
    """The map between a canvas's value slots / fields and its layout positions."""

    layout: CanvasLayout
    slots: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.slots) != len(self.layout.placements):
            raise ValueError(f"{len(self.slots)} slot counts for {len(self.layout.placements)} fields")

    @property
    def num_slots(self) -> int:
        return int(sum(self.slots))

    @cached_property
    def channels(self) -> int:
        return max(1 if k == 1 else math.ceil(k / (p.h * p.w)) for k, p in zip(self.slots, self.layout.placements,
                                                                                 strict=True))

    @cached_property
    def slot_index(self) -> np.ndarray:
        """``(P, C)`` slot read by each position and channel; ``num_slots`` where nothing is."""
        index = np.full((self.layout.num_positions, self.channels), self.num_slots, dtype=np.int64)
        offset = 0
        for k, placement in zip(self.slots, self.layout.placements, strict=True):
            positions = self.layout.positions(placement.path)
            if k == 1:
                index[positions, 0] = offset
            else:
                per = math.ceil(k / positions.size)
                local = np.arange(positions.size)[:, None] * per + np.arange(per)[None, :]
                index[positions, :per] = np.where(local < k, offset + local, self.num_slots)
            offset += k
        return index

    def scatter_values(self, values: Any, grid: bool = False, fill: float = 0.0) -> Any:
        """``(..., S)`` slot values -> ``(..., H*W[, C])``, or ``(..., H, W[, C])`` with ``grid``."""
        out = _gather_last(values, self.slot_index, fill)
        if self.channels == 1:
            out = out[..., 0]
        if grid:
            tail = () if self.channels == 1 else (self.channels,)
            out = out.reshape(*out.shape[:-2 if self.channels > 1 else -1], self.layout.H, self.layout.W, *tail)
        return out

    def scatter_fields(self, per_field: Any, grid: bool = False, fill: float = 0.0) -> Any:
        """``(..., F)`` one number per field (presence, loss weight) -> ``(..., H*W)`` or ``(..., H, W)``."""
        field = self.layout.position_field
        out = _gather_last(per_field, np.where(field >= 0, field, len(self.slots)), fill)
        if grid:
            out = out.reshape(*out.shape[:-1], self.layout.H, self.layout.W)
        return out


def slot_offsets(slots: Sequence[int]) -> np.ndarray:
    """``F + 1`` boundaries: field ``i`` holds slots ``offsets[i]:offsets[i+1]``."""
    return np.concatenate([[0], np.cumsum(slots, dtype=np.int64)])
