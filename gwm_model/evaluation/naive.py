"""The naive forecast of each field: the better of persistence and climatology, chosen on validation windows.

Persistence (the last value published by the origin) is near-optimal for a level that moves like a
random walk (a yield, an index); climatology (the training-period mean) is the better naive forecast
of a stationary series (a return, a growth rate), where carrying the last value forward doubles the
error variance. A model is only worth having where it beats the better of the two, so each field's
naive forecaster is picked on the cells after the anchor of the *validation* windows (never the test
period: the choice must not see what it is scored on), pooled over horizons 1..H, on the cells both
forecast. Persistence is the default; climatology replaces it only where it is *significantly*
better there (Diebold-Mariano on the per-window losses, p < 0.05). Measured on the embedded default:
picking the lower mean squared error alone chose climatology for US macro levels that sat near
their training mean over the short validation period and trended away on the test period, so the
"naive" forecast was 0.66 worse than persistence there and any model looked skilful against it.

The climatology judged on the validation windows is the mean of the data published before the first of
them, never a mean that contains the validation values themselves. Measured cause (``train_end`` three
years earlier, ``narratives_drive_markets``): with the mean up to ``train_end`` climatology "won" on
``events.social_virality`` only because it had seen the values it was scored on (with the honest mean,
persistence is kept), and the do-no-harm gate then weighed the AR base against that in-sample mean: a
negative least-squares weight on a group where AR beat the forecastability test's (honest) naive forecast
significantly on the same windows.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from gwm_model.canvas.canvas import Canvas
from gwm_model.evaluation.baselines import mean_forecast, persistence_forecast, step_offsets, window_cells
from gwm_model.evaluation.scores import diebold_mariano

PERSISTENCE, CLIMATOLOGY = "persistence", "climatology"
SIGNIFICANT = 0.05


def validation_fit_end(anchors: np.ndarray, train_end_step: int) -> int:
    """The last step a forecaster judged on validation windows at ``anchors`` may be fitted on: the first of
    them (nothing from the windows it is judged on), at most ``train_end_step``."""
    anchors = np.asarray(anchors, dtype=np.int64)
    return int(min(train_end_step, anchors.min())) if anchors.size else int(train_end_step)


def naive_forecast(canvas: Canvas, anchors: np.ndarray, context: int, horizon: int, fit_end_step: int,
                   use_climatology: np.ndarray) -> np.ndarray:
    """``(n, L, F)`` each field's naive forecast: the mean of the data visible at ``fit_end_step`` where
    ``use_climatology``, else the last published value."""
    persistence = persistence_forecast(canvas, anchors, context, horizon)
    climatology = mean_forecast(canvas, anchors, context, horizon, fit_end_step)
    return np.where(np.asarray(use_climatology, dtype=bool)[None, None, :], climatology, persistence)


def choose_naive(canvas: Canvas, anchors: Iterable[int], context: int, horizon: int,
                 train_end_step: int) -> dict[str, str]:
    """Scalar field path -> ``"persistence"``, or ``"climatology"`` where it had a significantly lower loss on the
    hidden cells after the anchor of the windows at ``anchors`` (validation anchors)."""
    anchors = np.asarray(anchors if isinstance(anchors, np.ndarray) else list(anchors), dtype=np.int64)
    scalar = np.asarray(canvas.slots) == 1
    chosen = {p: PERSISTENCE for p, s in zip(canvas.paths, scalar, strict=True) if s}
    if anchors.size == 0:
        return chosen
    cells = window_cells(canvas, anchors, context, horizon)
    ahead = step_offsets(context, horizon) >= 1
    scored = cells.hidden & ahead[None, :, None]
    persistence = persistence_forecast(canvas, anchors, context, horizon)
    climatology = mean_forecast(canvas, anchors, context, horizon, validation_fit_end(anchors, train_end_step))
    both = scored & np.isfinite(persistence) & np.isfinite(climatology)  # the same cells for the two
    n = both.sum(axis=1)  # (anchors, F)
    with np.errstate(invalid="ignore", divide="ignore"):  # per window: mean squared error over its cells
        p_loss = np.where(both, (persistence - cells.truth) ** 2, 0.0).sum(axis=1) / n
        c_loss = np.where(both, (climatology - cells.truth) ** 2, 0.0).sum(axis=1) / n
    for f in np.flatnonzero(scalar & (n.sum(axis=0) > 0)):
        stat, pvalue = diebold_mariano(c_loss[:, f], p_loss[:, f], horizon)
        if stat < 0 and pvalue < SIGNIFICANT:
            chosen[canvas.paths[f]] = CLIMATOLOGY
    return chosen
