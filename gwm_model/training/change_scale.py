"""Change space: each field's forecast correction measured in units of its own typical one-step change.

The network's output is a departure from the field's base forecast (:mod:`gwm_model.nn.model`: its AR
forecast, or with the window-only base its latest visible value).
In *level* space that departure and its loss are in the field's normalised level units, so a yield
whose week-to-week change is 0.02 level-sigmas contributes almost nothing to the loss and any
correction noise of the size the other fields need is harm 25-2,500x persistence's error (the
measured cause of ``financial.yield_curves``' -1.46 skill). In *change* space the correction is
multiplied, and the squared error divided, by the field's change scale ``c_f``:

    forecast = latest visible + c_f * output,        loss = ((forecast - target) / c_f)^2

so "no change" costs every field the same, each field's error counts relative to what persistence
would make, and a non-stationary level is never extrapolated from the training range.

``c_f`` is the root mean square of the change between consecutive training observations of the field
(dated on or before ``train_end`` and published by then, in normalised units), floored at
:data:`MIN_SCALE` (a series that almost never moves, such as a policy rate held for years) and capped
at :data:`MAX_SCALE`. Fields with fewer than :data:`MIN_CHANGES` such changes, and vector fields, keep
scale 1 (level space): there is no evidence of their step size.
"""

from __future__ import annotations

import numpy as np

from gwm_model.canvas.canvas import Canvas
from gwm_model.canvas.normalise import training_cells

TARGET_SPACES = ("level", "change")
MIN_SCALE = 0.01
MAX_SCALE = 2.0
MIN_CHANGES = 8


def change_scales(canvas: Canvas) -> dict[str, float]:
    """Per field path, its change scale ``c_f`` (see the module docstring) fitted on ``canvas``' training cells."""
    cell_day = np.asarray(canvas.axis.starts, dtype="datetime64[D]")
    train = training_cells(canvas.presence, cell_day[:, None], canvas.available_us, canvas.stats.train_end)
    out = {}
    for f, path in enumerate(canvas.paths):
        scale = 1.0
        if canvas.slots[f] == 1:
            series = canvas.values[train[:, f], canvas.offsets[f]].astype(np.float64)
            if series.size > MIN_CHANGES:
                rms = float(np.sqrt(np.mean(np.diff(series) ** 2)))
                scale = float(np.clip(rms, MIN_SCALE, MAX_SCALE))
        out[path] = scale
    return out


def slot_scales(canvas: Canvas, target_space: str, known: dict[str, float] | None = None) -> np.ndarray:
    """``(S,)`` float32 per value slot: ones in level space; in change space each slot's field's ``c_f`` (taken
    from ``known``, a checkpoint's recorded scales, where it has the field, else fitted on ``canvas``)."""
    if target_space not in TARGET_SPACES:
        raise ValueError(f"unknown target_space '{target_space}'. Fix: use one of {TARGET_SPACES}")
    if target_space == "level":
        return np.ones(int(canvas.offsets[-1]), dtype=np.float32)
    fitted = None
    per_field = []
    for path in canvas.paths:
        if known is not None and path in known:
            per_field.append(float(known[path]))
            continue
        fitted = fitted if fitted is not None else change_scales(canvas)
        per_field.append(fitted[path])
    return np.asarray(per_field, dtype=np.float32)[canvas.slot_field]
