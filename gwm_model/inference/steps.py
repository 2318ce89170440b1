"""What a checkpoint says about forecasting, read from its manifest, and the dates of canvas steps.

:func:`forecast_fields` lists the fields a checkpoint forecasts without loading its weights (``gwm predict``
uses it to choose a node); :func:`nearest_spread` reads the residual spread the evaluation measured per
field and horizon; :func:`step_starts` dates canvas steps, including steps past the canvas's end.
"""

from __future__ import annotations

import math

import numpy as np

from gwm_model.canvas.canvas import Canvas
from gwm_model.canvas.layout import CanvasLayout
from gwm_model.canvas.normalise import NormStats
from gwm_model.canvas.timeaxis import make_time_axis
from gwm_model.training.steps import STEP_DAYS


def forecast_fields(manifest: dict) -> tuple[str, ...]:
    """From a checkpoint's manifest alone: the fields it forecasts (scalar output fields with tokens in the model
    and training data), in the model's order."""
    described = manifest["canvas"]
    layout = CanvasLayout.from_dict(described["layout"])
    slots = dict(zip(layout.paths, described["slots"], strict=True))
    counts = NormStats.from_dict(described["normalisation"]).count
    weights = described.get("loss_weight") or {}
    return tuple(p for p in manifest["plan"]["fields"] if slots.get(p) == 1 and counts.get(p)
                 and float(weights.get(p, 1.0)) > 0)


def nearest_spread(per_offset: dict[str, float], offset: int) -> float:
    """The residual spread measured at ``offset``, else at the nearest measured offset (the anchor step
    itself is rarely hidden at test time, the step after it always is); NaN where none was measured."""
    if not per_offset:
        return float("nan")
    best = min(per_offset, key=lambda k: (abs(int(k) - offset), int(k)))
    return float(per_offset[best])


def step_starts(canvas: Canvas, steps: np.ndarray) -> np.ndarray:
    """First day (``datetime64[D]``) of each canvas step, steps past the canvas's end included."""
    steps = np.asarray(steps, dtype=np.int64)
    if steps.size == 0 or steps.max() < canvas.num_steps:
        return canvas.axis.starts[steps]
    days = math.ceil(STEP_DAYS[canvas.axis.frequency]) * (int(steps.max()) - canvas.num_steps + 2)
    extended = make_time_axis(canvas.axis.starts[0], canvas.axis.ends[-1] + np.timedelta64(days, "D"),
                              canvas.axis.frequency)
    return extended.starts[steps]


def step_start(canvas: Canvas, step: int) -> np.datetime64:
    return step_starts(canvas, np.array([step]))[0]
