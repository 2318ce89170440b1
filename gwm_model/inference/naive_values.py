"""The naive forecast from a forecast origin, in a field's transformed units.

Persistence carries the field's last value published by the origin instant (the latest canvas step
at or before the origin's step whose cell is present and was published by then, looking back over
the whole canvas, not only the model's window); climatology is the field's training-period mean.
Which one a field gets is :func:`gwm_model.evaluation.naive.choose_naive`'s choice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from gwm_model.canvas.canvas import Canvas
from gwm_model.canvas.normalise import NormStats
from gwm_model.evaluation.naive import CLIMATOLOGY


def naive_from_origins(canvas: Canvas, stats: NormStats, methods: Mapping[str, str], fields: Sequence[str],
                       anchors: np.ndarray, origins_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(B, n)`` the naive forecast of each of ``fields`` from each origin (anchor step, instant in µs), and
    ``(B, n)`` the canvas step of the last value published by the origin (-1: none)."""
    index = np.array([canvas.paths.index(p) for p in fields])
    values = canvas.values[:, canvas.offsets[index]].astype(np.float64)
    present, available = canvas.presence[:, index], canvas.available_us[:, index]
    steps = np.arange(canvas.num_steps)[:, None]
    out = np.full((anchors.size, index.size), np.nan)
    lasts = np.full((anchors.size, index.size), -1, dtype=np.int64)
    for i, (anchor, origin) in enumerate(zip(anchors, np.asarray(origins_us, dtype=np.int64), strict=True)):
        known = present & (available <= origin) & (steps <= anchor)
        last = lasts[i] = np.where(known, steps, -1).max(axis=0)
        out[i] = np.where(last >= 0, values[np.maximum(last, 0), np.arange(index.size)], np.nan)
    mu = np.array([stats.mean[p] for p in fields])
    sd = np.array([stats.std[p] for p in fields])
    out = out * sd + mu
    climatology = np.array([methods.get(p) == CLIMATOLOGY for p in fields])
    out[:, climatology] = mu[climatology]
    return out, lasts
