"""Deterministic packing of a projection's fields onto an (H, W) grid, keyed by field path.

Fields are placed in canonical order with skyline packing: each field goes to the leftmost column
where it sits lowest, so a subtree's fields stay near each other and the same projection always
gives the same layout. ``H``/``W`` may be given (and are checked) or sized automatically.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from gwm_model.schema.projection import Projection
from gwm_model.schema.spec import FieldSpec, SchemaError


@dataclass(frozen=True)
class Placement:
    """Where one field sits: rows ``row:row+h``, columns ``col:col+w``."""

    path: str
    row: int
    col: int
    h: int
    w: int


@dataclass(frozen=True)
class CanvasLayout:
    H: int
    W: int
    placements: tuple[Placement, ...]

    @cached_property
    def paths(self) -> tuple[str, ...]:
        return tuple(p.path for p in self.placements)

    @cached_property
    def by_path(self) -> dict[str, Placement]:
        return {p.path: p for p in self.placements}

    @property
    def num_positions(self) -> int:
        return self.H * self.W

    @cached_property
    def position_field(self) -> np.ndarray:
        """Field index (in ``placements`` order) at each flat position ``h*W + w``; -1 where empty."""
        grid = np.full((self.H, self.W), -1, dtype=np.int32)
        for i, p in enumerate(self.placements):
            grid[p.row:p.row + p.h, p.col:p.col + p.w] = i
        grid.flags.writeable = False
        return grid.reshape(-1)

    @property
    def used_positions(self) -> int:
        return int((self.position_field >= 0).sum())

    @property
    def utilisation(self) -> float:
        return self.used_positions / self.num_positions

    def positions(self, path: str) -> np.ndarray:
        """Flat indices (row-major) of the positions ``path`` occupies."""
        try:
            p = self.by_path[path]
        except KeyError:
            raise SchemaError(f"'{path}' has no place on this canvas") from None
        rows, cols = np.meshgrid(np.arange(p.row, p.row + p.h), np.arange(p.col, p.col + p.w), indexing="ij")
        return (rows * self.W + cols).reshape(-1)

    def to_dict(self) -> dict[str, object]:
        return {"H": self.H, "W": self.W,
                "fields": {p.path: [p.row, p.col, p.h, p.w] for p in self.placements}}

    @classmethod
    def from_dict(cls, data: dict) -> CanvasLayout:
        placements = tuple(Placement(path, *map(int, box)) for path, box in data["fields"].items())
        return cls(H=int(data["H"]), W=int(data["W"]), placements=placements)

    @cached_property
    def layout_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def _skyline(fields: Sequence[FieldSpec], W: int) -> tuple[list[Placement], int]:
    sky = np.zeros(W, dtype=np.int64)
    placements = []
    for spec in fields:
        base = sliding_window_view(sky, spec.w).max(axis=1)
        col = int(np.argmin(base))  # first minimum: leftmost lowest spot
        row = int(base[col])
        sky[col:col + spec.w] = row + spec.h
        placements.append(Placement(spec.path, row, col, spec.h, spec.w))
    return placements, int(sky.max(initial=0))


def pack_layout(fields: Projection | Sequence[FieldSpec], H: int | None = None,
                W: int | None = None) -> CanvasLayout:
    """Pack ``fields`` (a projection or field list, in canonical order) onto an (H, W) grid.

    With ``W`` unset, the width is the smallest square side that holds the total area (and at
    least the widest field). With ``H`` given, the packing must fit in it or a
    :class:`SchemaError` says the height it needs.
    """
    specs = list(fields.fields if isinstance(fields, Projection) else fields)
    if not specs:
        raise SchemaError("cannot lay out an empty projection")
    widest = max(specs, key=lambda f: f.w)
    area = sum(f.area for f in specs)
    if W is None:
        W = max(widest.w, math.ceil(math.sqrt(area)))
    elif W < widest.w:
        raise SchemaError(f"canvas width W={W} is narrower than field '{widest.path}' (w={widest.w}). "
                          f"Fix: use W >= {widest.w}")
    if H is not None and H * W < area:
        raise SchemaError(f"canvas {H}x{W} has {H * W} positions but the fields need {area}. "
                          f"Fix: use H >= {math.ceil(area / W)} at W={W}, or leave H unset")
    placements, needed = _skyline(specs, W)
    if H is None:
        H = needed
    elif needed > H:
        raise SchemaError(f"the fields need H={needed} rows at W={W}, more than the given H={H}. "
                          f"Fix: use H >= {needed}, a wider W, or leave H unset")
    return CanvasLayout(H=H, W=W, placements=tuple(placements))
