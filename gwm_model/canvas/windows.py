"""Training samples: windows of a canvas cut around an anchor step, with point-in-time inputs.

A window has ``context + horizon`` steps; its anchor ``t`` is the last context step, so the window
covers steps ``t - context + 1 .. t + horizon``. The rule for what the model may see is the
publication time alone: an input cell is visible iff its value was published before the anchor's
cutoff (the end of step ``t``). A late release inside the context stays hidden; a value about a
future step that was already published (a scheduled figure, a forecast) is visible. Hidden cells
are zero in ``inputs`` and 0 in ``input_mask``. Targets are every present cell of the window, past
and future, so the same sample trains filling in late releases and forecasting.

A sample is a dict of tensors (``L`` window steps, ``S`` value slots, ``F`` fields):
``inputs`` ``(L, S)``, ``input_mask`` ``(L, F)``, ``targets`` ``(L, S)``, ``target_mask`` ``(L, F)``,
``loss_weight`` ``(F,)``, ``anchor`` (the anchor's step index on the canvas axis) and ``source``
(which canvas it came from, for mixed datasets). Expand a field mask to slots with
``mask[..., canvas.slot_field]`` and put anything on positions with ``canvas.positions``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import torch
from torch.utils.data import Dataset

from gwm_model.canvas.canvas import Canvas
from gwm_model.canvas.timeaxis import as_day


class CanvasWindows(Dataset):
    """Windows of one canvas, one per anchor step.

    ``anchors``: anchor step indices to sample (default: every step with a full window).
    ``input_fields`` / ``target_fields``: ``(F,)`` bool masks of fields that may be inputs / targets
    (default: all). ``loss_weight``: ``(F,)`` override of the canvas's per-field loss weights.
    """

    def __init__(self, canvas: Canvas, context: int, horizon: int = 0, anchors: Iterable[int] | None = None,
                 input_fields: np.ndarray | None = None, target_fields: np.ndarray | None = None,
                 loss_weight: np.ndarray | None = None, source: int = 0) -> None:
        if context < 1 or horizon < 0:
            raise ValueError(f"windows need context >= 1 and horizon >= 0, got context={context}, horizon={horizon}")
        self.canvas, self.context, self.horizon, self.source = canvas, context, horizon, source
        first, last = context - 1, canvas.num_steps - horizon - 1
        if anchors is None:
            self.anchors = np.arange(first, max(first, last + 1), dtype=np.int64)
        else:
            self.anchors = np.asarray(list(anchors), dtype=np.int64)
            bad = self.anchors[(self.anchors < first) | (self.anchors > last)]
            if bad.size:
                raise ValueError(f"anchor step(s) {bad[:5].tolist()} leave no full window of {context}+{horizon} "
                                 f"steps on a {canvas.num_steps}-step canvas. Fix: use anchors in {first}..{last}")
        F = len(canvas.slots)
        self._values = torch.from_numpy(np.ascontiguousarray(canvas.values, dtype=np.float32))
        self._presence = torch.from_numpy(np.ascontiguousarray(canvas.presence))
        self._available = torch.from_numpy(np.ascontiguousarray(canvas.available_us))
        self._cutoffs = torch.from_numpy(canvas.axis.cutoffs_us)
        self._slot_field = torch.from_numpy(canvas.slot_field)
        self._inputs_allowed = torch.from_numpy(self._field_mask(input_fields, F, "input_fields"))
        self._targets_allowed = torch.from_numpy(self._field_mask(target_fields, F, "target_fields"))
        weight = canvas.loss_weight if loss_weight is None else np.asarray(loss_weight, dtype=np.float32)
        if weight.shape != (F,):
            raise ValueError(f"loss_weight has shape {weight.shape}, expected ({F},)")
        self._loss_weight = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))

    @staticmethod
    def _field_mask(mask: np.ndarray | None, fields: int, name: str) -> np.ndarray:
        if mask is None:
            return np.ones(fields, dtype=bool)
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (fields,):
            raise ValueError(f"{name} has shape {mask.shape}, expected ({fields},)")
        return mask

    @property
    def window(self) -> int:
        return self.context + self.horizon

    def __len__(self) -> int:
        return int(self.anchors.size)

    def anchors_between(self, first: dt.date | str | None = None, last: dt.date | str | None = None) -> np.ndarray:
        """Positions (dataset indices) of anchors whose step starts within ``first .. last`` (inclusive)."""
        starts = self.canvas.axis.starts[self.anchors]
        keep = np.ones(len(self), dtype=bool)
        if first is not None:
            keep &= starts >= as_day(first)
        if last is not None:
            keep &= starts <= as_day(last)
        return np.flatnonzero(keep)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        t = int(self.anchors[index])
        steps = slice(t - self.context + 1, t + self.horizon + 1)
        targets = self._values[steps].clone()
        visible = (self._available[steps] < self._cutoffs[t]) & self._inputs_allowed
        return {
            "inputs": targets * visible[:, self._slot_field],
            "input_mask": visible,
            "targets": targets,
            "target_mask": self._presence[steps] & self._targets_allowed,
            "loss_weight": self._loss_weight,
            "anchor": torch.tensor(t, dtype=torch.int64),
            "source": torch.tensor(self.source, dtype=torch.int64),
        }
