"""Per-field autoregressions on a canvas: the baselines' AR and the model's own base forecast.

One implementation serves two roles. :mod:`gwm_model.evaluation.baselines` scores an AR(p) per field as a
classical competitor. :class:`BaseForecast` is the same kind of fit used *inside* the world model: the
network's prediction of a cell at or after the anchor starts from the field's AR forecast from everything
published by the anchor (the whole history, not only the window) and the network learns the correction to
it (the linear "highway" of hybrid forecasters; the network alone had to rediscover the autoregression
from 12-step windows in ~100 CPU steps and did not). Fields too short to fit start from their last
published value. Visibility can be given in canvas steps (``visible_from``: visible at anchor ``t`` iff
``<= t``) or in microseconds (``available_us`` against a cutoff time), so training windows and as-of
inference use one code path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gwm_model.canvas.canvas import Canvas


def visible_from(canvas: Canvas) -> np.ndarray:
    """``(T, F)`` first anchor step at which each cell is visible (``T`` where never): visible at ``t`` iff ``<= t``."""
    return np.searchsorted(canvas.axis.cutoffs_us, canvas.available_us, side="right").astype(np.int64)


def scalar_values(canvas: Canvas) -> np.ndarray:
    """``(T, F)`` float64 normalised values of the scalar fields; NaN where absent and for vector fields."""
    scalar = np.asarray(canvas.slots) == 1
    out = np.full(canvas.presence.shape, np.nan)
    out[:, scalar] = canvas.values[:, canvas.offsets[:-1][scalar]]
    out[~canvas.presence] = np.nan
    return out


def training_values(canvas: Canvas, train_end_step: int) -> np.ndarray:
    """``(train_end_step + 1, F)`` scalar values visible at the cutoff of ``train_end_step``, NaN elsewhere."""
    if not 0 <= train_end_step < canvas.num_steps:
        raise ValueError(f"train_end_step {train_end_step} is outside the canvas (0..{canvas.num_steps - 1})")
    end = train_end_step + 1
    return np.where(visible_from(canvas)[:end] <= train_end_step, scalar_values(canvas)[:end], np.nan)


@dataclass(frozen=True)
class ARFit:
    """An AR(p) with intercept on one field's observation sequence, in normalised units."""

    intercept: float
    coef: np.ndarray  # (p,), lag 1 first
    spacing: float  # typical canvas steps between the field's observations
    n_obs: int

    def to_dict(self) -> dict[str, object]:
        return {"intercept": self.intercept, "coef": [float(c) for c in self.coef], "spacing": self.spacing,
                "n_obs": self.n_obs}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ARFit:
        return cls(float(data["intercept"]), np.asarray(data["coef"], dtype=np.float64), float(data["spacing"]),
                   int(data["n_obs"]))


LAST_VALUE = ARFit(0.0, np.ones(1), 1.0, 0)  # "the last published value, at every horizon"


def fit_ar(canvas: Canvas, train_end_step: int, order: int = 3, min_obs: int | None = None) -> dict[int, ARFit]:
    """Least-squares AR(``order``) per scalar field on its training observations, in step order.

    Training observations: present cells at steps ``<= train_end_step`` visible at its cutoff.
    Fields with fewer than ``min_obs`` (default ``5 * (order + 1)``) are left out (persistence).
    """
    if order < 1:
        raise ValueError(f"AR order must be >= 1, got {order}")
    min_obs = 5 * (order + 1) if min_obs is None else max(int(min_obs), order + 2)
    train = training_values(canvas, train_end_step)
    fits: dict[int, ARFit] = {}
    for f in range(train.shape[1]):
        steps = np.flatnonzero(np.isfinite(train[:, f]))
        if steps.size < min_obs:
            continue
        y = train[steps, f]
        lags = [y[order - k:y.size - k] for k in range(1, order + 1)]
        X = np.column_stack([np.ones(y.size - order), *lags])
        beta = np.linalg.lstsq(X, y[order:], rcond=None)[0]
        if np.all(np.isfinite(beta)):
            fits[f] = ARFit(float(beta[0]), beta[1:].copy(), float(np.median(np.diff(steps))), int(steps.size))
    return fits


def ar_weights(fit: ARFit, periods: int) -> tuple[np.ndarray, np.ndarray]:
    """Forecast ``j`` periods ahead = ``W[j] @ lags + C[j]`` for ``j = 0..periods`` (lags: latest first).

    ``W[j] = sum_k coef[k] W[j-1-k]`` with the lags themselves before ``j = 1``; once a stationary fit has forgotten
    its lags (``W`` and the change of ``C`` below 1e-12) the rest is its mean, so a cell years after a stale
    observation costs no more iterations than the fit needs to converge."""
    p = fit.coef.size
    W, C = np.zeros((periods + p, p)), np.zeros(periods + p)  # row j + p - 1 holds forecast j; rows < p - 1: lags
    W[np.arange(p - 1, -1, -1), np.arange(p)] = 1.0  # row p-1-k is lag k (lag 0 = the latest observation)
    coef = fit.coef[::-1]  # so coef @ W[rows j-p .. j-1] weights the latest with coef[0]
    with np.errstate(over="ignore", invalid="ignore"):
        for j in range(1, periods + 1):
            i = j + p - 1
            W[i] = coef @ W[i - p:i]
            C[i] = fit.intercept + coef @ C[i - p:i]
            if j > p and np.abs(W[i]).max() < 1e-12 and abs(C[i] - C[i - 1]) < 1e-12:
                W[i + 1:], C[i + 1:] = 0.0, C[i]
                break
    return W[p - 1:], C[p - 1:]


def ar_field(y_all: np.ndarray, vis_all: np.ndarray, fit: ARFit, anchors: np.ndarray,
             steps: np.ndarray) -> np.ndarray:
    """``(n, L)`` AR forecasts of one field for the canvas ``steps`` ``(n, L)`` of each anchor; persistence at or
    before the last visible observation. A cell is visible at anchor ``i`` iff ``vis_all <= anchors[i]`` (both in
    steps, or both in microseconds)."""
    obs = np.flatnonzero(np.isfinite(y_all))
    y, vis, p = y_all[obs], vis_all[obs], fit.coef.size
    by_vis = np.argsort(vis, kind="stable")
    count = np.searchsorted(vis[by_vis], anchors, side="right")  # observations visible at each anchor
    last = np.where(count > 0, np.maximum.accumulate(by_vis)[np.maximum(count - 1, 0)], -1)
    lags = np.zeros((anchors.size, p))
    prefix = (last == count - 1) & (count >= p)  # the visible observations are the first `count`
    lags[prefix] = y[last[prefix, None] - np.arange(p)]
    for i in np.flatnonzero(~prefix & (count >= p)):  # a later observation published before an earlier one
        lags[i] = y[np.flatnonzero(vis <= anchors[i])[-p:][::-1]]
    short = count < p
    lags[short, 0] = np.where(last[short] >= 0, y[np.maximum(last[short], 0)], np.nan)
    ahead = steps - np.where(last >= 0, obs[np.maximum(last, 0)], 0)[:, None]  # canvas steps after it
    periods = np.where(ahead > 0, np.maximum(1, np.floor(ahead / fit.spacing + 0.5)), 0).astype(np.int64)
    periods[short] = 0
    W, C = ar_weights(fit, int(periods.max(initial=0)))
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.einsum("nlp,np->nl", W[periods], lags) + C[periods]
    out[last < 0] = np.nan
    return np.where(np.isfinite(out), out, np.nan)


BASES = ("persistence", "ar")


@dataclass(frozen=True)
class BaseForecast:
    """Where the model's prediction of each scalar field starts at and after the anchor (see the module docstring).

    ``fits``: field path -> its AR fit (fitted on the steps up to ``fit_end_step``, before the validation
    windows, so the validation gate sees it out of sample); fields without one start from their last published
    value. ``kind = "persistence"`` is the window-only start the model had before (no base; the prediction
    starts from the latest value visible inside the window).
    """

    kind: str
    order: int
    fit_end_step: int
    fits: dict[str, ARFit]

    def __post_init__(self) -> None:
        if self.kind not in BASES:
            raise ValueError(f"unknown base forecast '{self.kind}'. Fix: use one of {BASES}")

    @classmethod
    def fit(cls, canvas: Canvas, fit_end_step: int, kind: str = "ar", order: int = 3) -> BaseForecast:
        fits = fit_ar(canvas, fit_end_step, order) if kind == "ar" else {}
        return cls(kind, order, int(fit_end_step), {canvas.paths[f]: fit for f, fit in fits.items()})

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "order": self.order, "fit_end_step": self.fit_end_step,
                "fits": {p: f.to_dict() for p, f in self.fits.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, object] | None) -> BaseForecast | None:
        if not data:
            return None
        return cls(str(data["kind"]), int(data["order"]), int(data["fit_end_step"]),
                   {p: ARFit.from_dict(f) for p, f in dict(data["fits"]).items()})

    def forecast_compact(self, canvas: Canvas, anchors: np.ndarray, cutoff_us: np.ndarray, offsets: np.ndarray,
                         late: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
        """Base values for windows at ``anchors`` (canvas steps) whose rows are ``anchors + offsets``, from the cells
        with ``available_us <= cutoff_us`` (per anchor), for the scalar fields with data only: their canvas indices
        ``(K,)`` and float32 ``(n, L, K)``, NaN before the anchor (``late``: there too, the AR forecast of each step
        after the last value published by the cutoff, for the nowcasts of late releases; the network never reads
        those) and where nothing was published. None for ``kind = "persistence"``."""
        if self.kind == "persistence":
            return None
        anchors = np.asarray(anchors, dtype=np.int64)
        steps = anchors[:, None] + np.asarray(offsets, dtype=np.int64)[None, :]
        rows = np.ones(len(offsets), dtype=bool) if late else np.asarray(offsets) >= 0
        fields = np.flatnonzero((np.asarray(canvas.slots) == 1) & canvas.presence.any(axis=0))
        out = np.full((anchors.size, steps.shape[1], fields.size), np.nan, dtype=np.float32)
        y = scalar_values(canvas)
        cutoff = np.asarray(cutoff_us, dtype=np.int64)
        for k, f in enumerate(fields):
            fit = self.fits.get(canvas.paths[f], LAST_VALUE)
            out[:, rows, k] = ar_field(y[:, f], canvas.available_us[:, f], fit, cutoff, steps[:, rows])
        return fields, out
