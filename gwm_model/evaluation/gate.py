"""Do no harm: a per-field gate that blends the model's forecast with the naive one, fitted on validation windows.

    forecast = naive + w_f * (model - naive),   0 <= w_f <= 1

``w_f`` is the least-squares weight of the model's correction to the naive forecast on the hidden
cells at and after the anchor of the *validation* windows (before ``train_end``: the test period is
never seen), clipped to [0, 1]. Where the model's correction carries no signal (a yield whose naive
forecast is near-optimal) the weight goes to 0 and the forecast is the naive one; where it does, the
weight keeps it. A field with fewer than ``min_cells`` validation cells gets 0 (no evidence, no
correction). Measured cause that motivates it: on the embedded default the models' normalised
one-step errors on the yields are 5-10x the naive forecast's, because any correction noise on a
series that persistence forecasts almost perfectly is pure harm.
"""

from __future__ import annotations

import numpy as np

MIN_GATE_CELLS = 20
GATE_BLOCKS = 3


def fit_gate(model: np.ndarray, naive: np.ndarray, truth: np.ndarray, scored: np.ndarray,
             min_cells: int = MIN_GATE_CELLS, blocks: int = GATE_BLOCKS) -> np.ndarray:
    """``(F,)`` weights from ``(n, L, F)`` validation forecasts (``n`` windows in time order), truth and the cells
    to fit on. With ``blocks > 1`` the weight must also pay off in each of ``blocks`` consecutive runs of
    windows that hold cells of the field (and in at least two of them), else it is 0."""
    ok = scored & np.isfinite(model) & np.isfinite(naive) & np.isfinite(truth)
    correction = np.where(ok, model - naive, 0.0).astype(np.float64)
    target = np.where(ok, truth - naive, 0.0).astype(np.float64)
    num_by_window = (correction * target).sum(axis=1)         # (n, F)
    den_by_window = (correction * correction).sum(axis=1)
    num, den = num_by_window.sum(axis=0), den_by_window.sum(axis=0)
    cells = ok.sum(axis=(0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.clip(np.where(den > 0, num / den, 0.0), 0.0, 1.0)
    weight = np.where(cells >= min_cells, weight, 0.0)
    if blocks > 1 and model.shape[0] >= blocks:
        parts = np.array_split(np.arange(model.shape[0]), blocks)
        with_cells = np.zeros(weight.shape, dtype=np.int64)
        pays = np.ones(weight.shape, dtype=bool)
        for part in parts:
            n_b, d_b = num_by_window[part].sum(axis=0), den_by_window[part].sum(axis=0)
            has = ok[part].any(axis=(0, 1))
            with_cells += has
            # the gated forecast's squared-error reduction against naive on this block: 2 w num - w^2 den
            pays &= ~has | (2 * weight * n_b - weight * weight * d_b > 0)
        weight = np.where(pays & (with_cells >= 2), weight, 0.0)
    return weight


def apply_gate(model: np.ndarray, naive: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``naive + weight * (model - naive)`` over the last axis (fields); where naive is missing, the model."""
    gated = naive + weight * (model - naive)
    return np.where(np.isfinite(naive), gated, model)
