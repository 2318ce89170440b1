"""Baselines that forecast the cells a canvas model is scored on, from the same point-in-time information.

Every baseline returns ``(n_anchors, L, F)`` float32 in the canvas's normalised units, ``L = context +
horizon`` rows in :class:`~gwm_model.canvas.windows.CanvasWindows`' order (window row ``r`` of anchor
``t`` is canvas step ``t - context + 1 + r``), NaN where the baseline has no forecast. Only scalar
fields (one slot) are forecast; vector fields are NaN.

Point in time: a baseline for anchor ``t`` uses only cells visible at ``t`` (published before the
cutoff of step ``t``), from the whole history before the anchor, not only the window. Fitted
parameters (AR, DFM) use only the data visible at the cutoff of ``train_end_step``.

- :func:`persistence_forecast`: the field's last visible value (the latest step whose value is visible);
- :func:`mean_forecast`: the field's mean over the training data (climatology);
- :func:`ar_forecast`: an AR(p) per field on its own observation sequence (native cadence);
- :func:`dfm_forecast`: statsmodels' ``DynamicFactorMQ`` on the canvas grid, one model for the most
  observed fields, smoothed values for hidden context cells and forecasts for future steps.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from gwm_model.canvas.canvas import Canvas
from gwm_model.training.autoregression import (
    ARFit,
    ar_field,
    fit_ar,
    scalar_values,
    training_values,
    visible_from,
)

_MATRICES = ("design", "obs_intercept", "obs_cov", "transition", "state_intercept", "selection", "state_cov")


def step_offsets(context: int, horizon: int) -> np.ndarray:
    """Window row -> step minus anchor: ``-(context - 1) .. horizon``."""
    return np.arange(-(context - 1), horizon + 1, dtype=np.int64)


def window_steps(canvas: Canvas, anchors: Iterable[int], context: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Checked anchors ``(n,)`` and the canvas step of each window row ``(n, L)``."""
    if context < 1 or horizon < 0:
        raise ValueError(f"windows need context >= 1 and horizon >= 0, got context={context}, horizon={horizon}")
    anchors = np.asarray(anchors if isinstance(anchors, np.ndarray) else list(anchors), dtype=np.int64).reshape(-1)
    first, last = context - 1, canvas.num_steps - horizon - 1
    bad = anchors[(anchors < first) | (anchors > last)]
    if bad.size:
        raise ValueError(f"anchor step(s) {bad[:5].tolist()} leave no full window of {context}+{horizon} steps "
                         f"on a {canvas.num_steps}-step canvas. Fix: use anchors in {first}..{last}")
    return anchors, anchors[:, None] + step_offsets(context, horizon)[None, :]


@dataclass(frozen=True)
class WindowCells:
    """The scored side of windows: ``truth`` ``(n, L, F)`` (NaN where absent), ``present`` and ``visible``."""

    anchors: np.ndarray
    steps: np.ndarray
    truth: np.ndarray
    present: np.ndarray
    visible: np.ndarray

    @property
    def hidden(self) -> np.ndarray:
        """Present cells the inputs do not show (late releases, nowcasts, forecasts): the usual score mask."""
        return self.present & ~self.visible


def window_cells(canvas: Canvas, anchors: Iterable[int], context: int, horizon: int) -> WindowCells:
    """Truth, presence and visibility of every window cell, aligned with the baselines' outputs."""
    anchors, steps = window_steps(canvas, anchors, context, horizon)
    truth = scalar_values(canvas)[steps].astype(np.float32)
    present = canvas.presence[steps] & np.isfinite(truth)
    visible = visible_from(canvas)[steps] <= anchors[:, None, None]
    return WindowCells(anchors, steps, truth, present, visible & present)


def _last_visible(canvas: Canvas) -> np.ndarray:
    """``(T, F)`` latest step whose cell is visible at each anchor step; -1 where none is."""
    vis = visible_from(canvas)
    T, F = vis.shape
    last = np.full((T + 1, F), -1, dtype=np.int64)
    s, f = np.nonzero(canvas.presence & (vis < T))
    np.maximum.at(last, (vis[s, f], f), s)
    return np.maximum.accumulate(last[:T], axis=0)


def _broadcast(per_anchor: np.ndarray, length: int) -> np.ndarray:
    return np.repeat(per_anchor[:, None, :], length, axis=1).astype(np.float32)


def persistence_forecast(canvas: Canvas, anchors: Iterable[int], context: int, horizon: int) -> np.ndarray:
    """Every window cell gets its field's last value visible at the anchor; ``(n, L, F)``.

    "Last" is by step: the value of the latest step whose cell was published before the anchor's
    cutoff, looking at the whole canvas. Cost O(T F) once, then a broadcast.
    """
    anchors, steps = window_steps(canvas, anchors, context, horizon)
    last = _last_visible(canvas)[anchors]
    value = scalar_values(canvas)[np.maximum(last, 0), np.arange(last.shape[1])]
    value[last < 0] = np.nan
    return _broadcast(value, steps.shape[1])


def mean_forecast(canvas: Canvas, anchors: Iterable[int], context: int, horizon: int,
                  train_end_step: int) -> np.ndarray:
    """Every window cell gets its field's mean over the training data (visible at ``train_end_step``)."""
    anchors, steps = window_steps(canvas, anchors, context, horizon)
    train = training_values(canvas, train_end_step)
    count = np.isfinite(train).sum(axis=0)
    mean = np.where(count > 0, np.nansum(train, axis=0) / np.maximum(count, 1), np.nan)
    return _broadcast(np.broadcast_to(mean, (anchors.size, mean.size)), steps.shape[1])


def ar_forecast(canvas: Canvas, anchors: Iterable[int], context: int, horizon: int, train_end_step: int,
                order: int = 3, *, fits: dict[int, ARFit] | None = None, min_obs: int | None = None) -> np.ndarray:
    """AR(``order``) forecasts per scalar field, iterated from the observations visible at each anchor.

    A cell ``k`` canvas steps after the field's last visible observation gets the forecast ``j =
    max(1, round(k / spacing))`` of the field's periods ahead (``spacing``: median canvas steps between
    training observations); cells at or before it get that observation (persistence), as do fields
    without a fit and anchors with fewer than ``order`` visible observations. Pass ``fits`` (from
    :func:`fit_ar`) to reuse a fit. An explosive fit can overflow far ahead; such cells are NaN.
    """
    anchors, steps = window_steps(canvas, anchors, context, horizon)
    out = persistence_forecast(canvas, anchors, context, horizon)
    fits = fit_ar(canvas, train_end_step, order, min_obs) if fits is None else fits
    y, vis = scalar_values(canvas), visible_from(canvas)
    for f, fit in fits.items():
        out[:, :, f] = ar_field(y[:, f], vis[:, f], fit, anchors, steps)
    return out


@dataclass(frozen=True)
class DFMFit:
    """A fitted ``DynamicFactorMQ``: its fields, state-space matrices, initialisation and standardisation."""

    fields: np.ndarray
    matrices: dict[str, np.ndarray]
    initialization: object
    mean: np.ndarray
    std: np.ndarray


def _smoother(fit: DFMFit, data: np.ndarray):
    from statsmodels.tsa.statespace.kalman_smoother import KalmanSmoother

    k_states, k_posdef = fit.matrices["selection"].shape
    ssm = KalmanSmoother(k_endog=fit.fields.size, k_states=k_states, k_posdef=k_posdef, **fit.matrices)
    ssm.bind(np.ascontiguousarray((data - fit.mean) / fit.std))
    return ssm


def fit_dfm(train: np.ndarray, fields: Sequence[int], factors: int = 1, factor_order: int = 1, maxiter: int = 100,
            tolerance: float = 1e-6) -> tuple[DFMFit | None, str]:
    """Fit ``DynamicFactorMQ`` by EM on ``train[:, fields]``, dropping the least observed quarter of the fields
    after each failure; ``(fit, "")`` or ``(None, why)``. ``fields`` are tried in the given order."""
    from statsmodels.tsa.statespace.dynamic_factor_mq import DynamicFactorMQ

    fields, why = list(fields), "no fields"
    while len(fields) > factors:
        data = train[:, fields]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mean, std = np.nanmean(data, axis=0), np.nanstd(data, axis=0)
                model = DynamicFactorMQ(data, factors=factors, factor_orders=factor_order, standardize=(mean, std))
                result = model.fit(maxiter=maxiter, tolerance=tolerance, disp=False)
                model.update(result.params)
            matrices = {name: np.array(model.ssm[name], dtype=np.float64) for name in _MATRICES}
            if not (np.isfinite(result.llf) and all(np.isfinite(m).all() for m in matrices.values())):
                raise ValueError(f"non-finite fit (log-likelihood {result.llf})")
            return DFMFit(np.asarray(fields), matrices, model.ssm.initialization, mean, std), ""
        except Exception as error:  # any failure of the fit means: try fewer fields
            why = f"{len(fields)} fields: {type(error).__name__}: {error}"
            fields = fields[:len(fields) - max(1, len(fields) // 4)]
    return None, why


def dfm_forecast(canvas: Canvas, anchors: Iterable[int], context: int, horizon: int, train_end_step: int,
                 factors: int = 1, factor_order: int = 1, max_fields: int = 30, min_obs: int = 24,
                 maxiter: int = 100, tolerance: float = 1e-6) -> np.ndarray:
    """Dynamic factor model forecasts on the canvas grid (one period per step); ``(n, L, F)``.

    Fields: the scalar fields with at least ``min_obs`` training observations (visible at the cutoff
    of ``train_end_step``, steps ``<= train_end_step``), most observed first, up to ``max_fields``;
    the others are NaN. The model is fitted once by EM on those training data. For each anchor the
    Kalman smoother runs on the data visible at it (NaN where hidden, steps up to the window's end):
    smoothed values fill hidden context cells, and beyond the data they are the forecasts.

    Cost: the fit dominates (EM, about 50 ms per iteration for 1000 steps x 30 fields: 4-8 s at
    ``maxiter=100``, EM usually stops near 120). Then one Kalman filter over the canvas on all its
    data, and per anchor a smoother only over the steps from the first cell hidden at the anchor (or
    the window start) to the window end, started from the full-data filter's predicted state there
    (exact: every cell before that step is visible at the anchor). About 3 ms per anchor when
    releases lag a few steps; a field published long after its dates makes the tails, and the cost,
    longer (a whole-canvas tail is about 15 ms). A failed fit is retried with fewer fields, then
    gives NaN with a warning, never an error.
    """
    from statsmodels.tsa.statespace.kalman_smoother import SMOOTHER_STATE

    anchors, steps = window_steps(canvas, anchors, context, horizon)
    out = np.full((anchors.size, steps.shape[1], len(canvas.slots)), np.nan, dtype=np.float32)
    train = training_values(canvas, train_end_step)
    count = np.isfinite(train).sum(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        spread = np.nanstd(train, axis=0)
    ranked = [f for f in np.argsort(-count, kind="stable").tolist() if count[f] >= min_obs and spread[f] > 1e-8]
    fit, why = fit_dfm(train, ranked[:max_fields], factors, factor_order, maxiter, tolerance)
    if fit is None:
        warnings.warn(f"dfm_forecast: no dynamic factor model could be fitted ({why}); returning NaN. "
                      f"Fix: more training data (min_obs={min_obs}) or fewer factors", RuntimeWarning, stacklevel=2)
        return out
    if anchors.size == 0:
        return out
    y, vis = scalar_values(canvas)[:, fit.fields], visible_from(canvas)[:, fit.fields]
    # first step with a present cell still hidden at anchor t: searchsorted of t in the prefix max of
    # the steps' last publication (as anchor steps)
    released = np.maximum.accumulate(np.where(np.isfinite(y), vis, -1).max(axis=1))
    first_hidden = np.searchsorted(released, anchors, side="right")
    start = np.minimum(first_hidden, anchors - context + 1)
    failed, filter_error = 0, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:  # the states every anchor starts from: one filter over all the data before the latest start
            full = _smoother(fit, y[:start.max() + 1])
            full.initialize(fit.initialization)
            filtered = full.filter()
            a, P, diffuse = filtered.predicted_state, filtered.predicted_state_cov, int(filtered.nobs_diffuse or 0)
        except Exception as error:
            a = P = None
            diffuse, filter_error = int(start.max()), error  # every anchor then runs from step 0 on its own
        start = np.where(start <= diffuse, 0, start)
        for i, (t, s0) in enumerate(zip(anchors.tolist(), start.tolist(), strict=True)):
            try:
                tail = np.where(vis[s0:t + horizon + 1] <= t, y[s0:t + horizon + 1], np.nan)
                ssm = _smoother(fit, tail)
                if s0 == 0:
                    ssm.initialize(fit.initialization)
                else:
                    ssm.initialize_known(a[:, s0].copy(), P[:, :, s0].copy())
                state = ssm.smooth(smoother_output=SMOOTHER_STATE).smoothed_state
                signal = fit.matrices["design"] @ state + fit.matrices["obs_intercept"][:, None]
                out[i][:, fit.fields] = (signal.T * fit.std + fit.mean)[t - context + 1 - s0:]
            except Exception:  # one anchor's numerical failure leaves its row NaN
                failed += 1
    if filter_error is not None:
        warnings.warn(f"dfm_forecast: the full-data filter failed ({filter_error}); each window was smoothed "
                      "from the first step", RuntimeWarning, stacklevel=2)
    if failed:
        warnings.warn(f"dfm_forecast: the smoother failed for {failed} of {anchors.size} anchors; they are NaN",
                      RuntimeWarning, stacklevel=2)
    return out


def baseline_forecasts(canvas: Canvas, anchors: Iterable[int], context: int, horizon: int, train_end_step: int,
                       models: Sequence[str] = ("persistence", "mean", "ar", "dfm"), *, ar_order: int = 3,
                       **dfm_options) -> dict[str, np.ndarray]:
    """Name -> ``(n, L, F)`` forecasts for the named baselines (``persistence``, ``mean``, ``ar``, ``dfm``)."""
    anchors = window_steps(canvas, anchors, context, horizon)[0]
    makers = {
        "persistence": lambda: persistence_forecast(canvas, anchors, context, horizon),
        "mean": lambda: mean_forecast(canvas, anchors, context, horizon, train_end_step),
        "ar": lambda: ar_forecast(canvas, anchors, context, horizon, train_end_step, ar_order),
        "dfm": lambda: dfm_forecast(canvas, anchors, context, horizon, train_end_step, **dfm_options),
    }
    unknown = [m for m in models if m not in makers]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}. Fix: choose from {sorted(makers)}")
    return {name: makers[name]() for name in models}
