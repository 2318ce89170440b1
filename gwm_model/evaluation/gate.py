"""Do no harm: a per-field gate that blends the model's forecast with the naive one, fitted on validation windows.

    forecast = naive + w_f * (model - naive),   0 <= w_f <= 1

``w_f`` is the least-squares weight of the model's correction to the naive forecast on the hidden
cells at and after the anchor of the *validation* windows (before ``train_end``: the test period is
never seen), lowered to its one-sided 95% confidence bound and clipped to [0, 1]. Where the model's
correction carries no signal (a yield whose naive forecast is near-optimal) the weight goes to 0 and
the forecast is the naive one; where it does, the weight keeps it. A field with fewer than
``min_cells`` validation cells gets 0 (no evidence, no correction). Measured cause that motivates it:
on the embedded default the models' normalised one-step errors on the yields are 5-10x the naive
forecast's, because any correction noise on a series that persistence forecasts almost perfectly is
pure harm.

With the model's AR base forecast (:class:`~gwm_model.training.autoregression.BaseForecast`) the gate has two
weights, one for the base and one for the network's correction to it (:func:`fit_stacked_gate`). The evaluation
refits them at every test origin on the errors published by then (:mod:`gwm_model.evaluation.rolling_gate`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MIN_GATE_CELLS = 20
GATE_BLOCKS = 3
GATE_CONFIDENCE = 1.645  # the weight is its one-sided 95% lower confidence bound
LAG_WINDOWS = 2  # Newey-West lags of that bound, in window lengths: windows L apart still share cells
HALF_GAIN = 1.0 + 1.0 / np.sqrt(2.0)  # a weight up to this multiple of a block's own keeps half its best gain


def _standard_error(num_by_window: np.ndarray, den_by_window: np.ndarray, weight: np.ndarray, lags: int) -> np.ndarray:
    """``(F,)`` standard error of the least-squares weight ``sum(num) / sum(den)`` from its per-window scores
    ``num - weight * den`` (windows in time order), with a Newey-West long-run variance over ``lags`` windows:
    overlapping windows share truth cells, and a correction's errors are autocorrelated."""
    score = num_by_window - weight[None, :] * den_by_window
    variance = (score * score).sum(axis=0)
    for k in range(1, min(lags, score.shape[0])):
        variance += 2.0 * (1.0 - k / lags) * (score[k:] * score[:-k]).sum(axis=0)
    den = den_by_window.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, np.sqrt(np.maximum(variance, 0.0)) / den, np.inf)


def fit_gate(model: np.ndarray, naive: np.ndarray, truth: np.ndarray, scored: np.ndarray,
             min_cells: int = MIN_GATE_CELLS, blocks: int = GATE_BLOCKS,
             confidence: float = GATE_CONFIDENCE, lags: int | None = None) -> np.ndarray:
    """``(F,)`` weights from ``(n, L, F)`` validation forecasts (``n`` windows in time order), truth and the cells
    to fit on. With ``blocks > 1`` the weight must also pay off in each of ``blocks`` consecutive runs of
    windows that hold cells of the field (and the field must have cells in at least two of them, else it is 0):
    it is capped where it would keep less than half of some block's best possible gain, at ``HALF_GAIN`` times
    the smallest of the blocks' own least-squares weights (0 where one is not positive). A cap rather than a
    pass/fail test: measured on ``basic_economics``' AR base for ``country_us.macro``, block weights 0.70, 0.98
    and 0.36, where pass/fail closed the gate on a base that helped in every block.

    The weight is the least-squares weight less ``confidence`` standard errors (:func:`_standard_error`; ``lags``
    defaults to twice the window length ``L``: windows ``L`` apart still share cells), so a correction opens
    only where its covariance with the naive forecast's error is significantly positive (``confidence=0``: the
    plain least-squares weight). On overlapping windows of pure noise it opens on about 10% of fields, at small
    weights, where the plain weight opens on half. Measured cause: on martingale-like fields (index levels) the
    network's correction is noise, yet the plain weight opened at 0.3-0.7 on the S&P, Nasdaq and Dow in
    ``narratives_drive_markets`` and made its equities group significantly worse than naive on test
    (-0.020, DM p 0.04)."""
    ok = scored & np.isfinite(model) & np.isfinite(naive) & np.isfinite(truth)
    correction = np.where(ok, model - naive, 0.0).astype(np.float64)
    target = np.where(ok, truth - naive, 0.0).astype(np.float64)
    num_by_window = (correction * target).sum(axis=1)         # (n, F)
    den_by_window = (correction * correction).sum(axis=1)
    num, den = num_by_window.sum(axis=0), den_by_window.sum(axis=0)
    cells = ok.sum(axis=(0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(den > 0, num / den, 0.0)
    if confidence > 0:
        lags = lags or LAG_WINDOWS * model.shape[1]
        weight = weight - confidence * _standard_error(num_by_window, den_by_window, weight, lags)
    weight = np.where(cells >= min_cells, np.clip(weight, 0.0, 1.0), 0.0)
    if blocks > 1 and model.shape[0] >= blocks:
        parts = np.array_split(np.arange(model.shape[0]), blocks)
        with_cells = np.zeros(weight.shape, dtype=np.int64)
        cap = np.ones(weight.shape)
        for part in parts:
            n_b, d_b = num_by_window[part].sum(axis=0), den_by_window[part].sum(axis=0)
            has = ok[part].any(axis=(0, 1))
            with_cells += has
            # the block's own least-squares weight w_b: a weight w gains d_b (2 w w_b - w^2) against naive there,
            # at least half of the block's best gain (d_b w_b^2) for w <= (1 + 1/sqrt 2) w_b
            with np.errstate(invalid="ignore", divide="ignore"):
                own = np.where(d_b > 0, n_b / d_b, 0.0)
            cap = np.where(has, np.minimum(cap, HALF_GAIN * own), cap)
        weight = np.where(with_cells >= 2, np.clip(np.minimum(weight, cap), 0.0, 1.0), 0.0)
    return weight


def apply_gate(model: np.ndarray, naive: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``naive + weight * (model - naive)`` over the last axis (fields); where naive is missing, the model."""
    gated = naive + weight * (model - naive)
    return np.where(np.isfinite(naive), gated, model)


def fit_group_gate(model: np.ndarray, naive: np.ndarray, truth: np.ndarray, scored: np.ndarray,
                   groups: Sequence[str], min_cells: int = MIN_GATE_CELLS, blocks: int = GATE_BLOCKS,
                   confidence: float = GATE_CONFIDENCE) -> np.ndarray:
    """:func:`fit_gate` with one weight per group of fields (``groups`` names each field's group): the cells of a
    group's fields are pooled, so the least squares and the per-block check see all of them at once."""
    groups = np.asarray(list(groups))
    weight = np.zeros(model.shape[-1])
    n = model.shape[0]
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        model_g, naive_g, truth_g, scored_g = (x[..., members].reshape(n, -1, 1) for x in (model, naive, truth, scored))
        weight[members] = fit_gate(model_g, naive_g, truth_g, scored_g, min_cells, blocks, confidence,
                                   lags=LAG_WINDOWS * model.shape[1])[0]
    return weight


def fit_stacked_gate(model: np.ndarray, base: np.ndarray | None, naive: np.ndarray, truth: np.ndarray,
                     scored: np.ndarray, groups: Sequence[str] | None = None, min_cells: int = MIN_GATE_CELLS,
                     blocks: int = GATE_BLOCKS, confidence: float = GATE_CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)``, each ``(F,)``: the weight of the model's base forecast over naive, then of the network's correction
    over that gated base, both least squares (at their confidence bound) in [0, 1] that pay off in every block
    (:func:`fit_gate`):

        forecast = naive + a * (base - naive) + b * (model - base)

    Two steps, because one weight on ``model - naive`` cannot keep a good base and drop a noisy correction at once
    (measured: on ``country_us.macro`` the network's correction took the AR base's test gain from 0.13 to 0.10, and
    the single weight closed on 47 of 62 fields, giving the base's gain away with the noise). ``a`` is one weight per
    field group when ``groups`` is given (:func:`fit_group_gate`): the base is a classical AR, and a few years of
    validation cells of one monthly field are too few to tell in each block that it helps (per field, under a
    pass/fail block test, it opened on 13 of those 62 fields and the group kept 0.005 of the base's 0.129), while
    the group's pooled cells are the evidence that made the group forecastable. ``b`` is per field. Without a base
    (``None``, or NaN in a cell) the correction is
    taken over naive and ``a`` is 0."""
    if base is None:
        return np.zeros(model.shape[-1]), fit_gate(model, naive, truth, scored, min_cells, blocks, confidence)
    start = np.where(np.isfinite(base), base, naive)
    if groups is None:
        a = fit_gate(start, naive, truth, scored, min_cells, blocks, confidence)
    else:
        a = fit_group_gate(start, naive, truth, scored, groups, min_cells, blocks, confidence)
    gated_base = apply_gate(start, naive, a)
    b = fit_gate(gated_base + (model - start), gated_base, truth, scored, min_cells, blocks, confidence)
    return a, b


def apply_stacked_gate(model: np.ndarray, base: np.ndarray | None, naive: np.ndarray, a: np.ndarray,
                       b: np.ndarray) -> np.ndarray:
    """``naive + a * (base - naive) + b * (model - base)`` over the last axis; where naive is missing, the model."""
    if base is None:
        return apply_gate(model, naive, b)
    start = np.where(np.isfinite(base), base, naive)
    gated = naive + a * (start - naive) + b * (model - start)
    return np.where(np.isfinite(naive), gated, model)
