"""Scores of forecasts on canvas windows: MSE, MAE, skill against a reference, Diebold–Mariano tests.

Arrays follow the baselines' layout: ``(n_anchors, L, F)`` in normalised units, NaN where a model
has no forecast. ``score_mask`` selects the scored cells (usually the present cells hidden from the
inputs, :attr:`~gwm_model.evaluation.baselines.WindowCells.hidden`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.special import stdtr

ALL = "all"
Bucket = Mapping[int, Hashable] | Callable[[int], Hashable] | None


def diebold_mariano(loss_a: np.ndarray, loss_b: np.ndarray, horizon: int = 1) -> tuple[float, float]:
    """Diebold–Mariano test of equal expected loss; ``(stat, two-sided p-value)``.

    ``d = loss_a - loss_b`` over the pairs where both are finite. The long-run variance of ``d`` uses
    ``horizon - 1`` autocovariance lags with Bartlett (Newey–West) weights ``1 - k / horizon``; the
    statistic gets the Harvey–Leybourne–Newbold factor ``sqrt((n + 1 - 2h + h(h - 1) / n) / n)`` and
    is compared with Student's t on ``n - 1`` degrees of freedom. A negative statistic means ``a``
    has the lower loss. NaN with fewer than 3 pairs; ``(0, 1)`` when every difference is zero;
    ``(-inf or inf, 0)`` when the difference is a nonzero constant.
    """
    a, b = np.asarray(loss_a, dtype=np.float64).ravel(), np.asarray(loss_b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"loss series differ in length: {a.size} and {b.size}")
    h = int(horizon)
    if h < 1:
        raise ValueError(f"Diebold-Mariano horizon must be >= 1, got {horizon}")
    d = (a - b)[np.isfinite(a) & np.isfinite(b)]
    n = d.size
    if n < 3:
        return math.nan, math.nan
    mean = float(d.mean())
    centred = d - mean
    variance = float(centred @ centred) / n
    for k in range(1, min(h, n)):
        variance += 2.0 * (1.0 - k / h) * float(centred[k:] @ centred[:-k]) / n
    if variance <= 1e-12 * float(d @ d) / n:  # constant difference (zero variance)
        return (0.0, 1.0) if mean == 0.0 else (math.copysign(math.inf, mean), 0.0)
    correction = (n + 1 - 2 * h + h * (h - 1) / n) / n
    if correction <= 0:
        return math.nan, math.nan
    stat = mean / math.sqrt(variance / n) * math.sqrt(correction)
    return stat, float(2.0 * stdtr(n - 1, -abs(stat)))


def _buckets(step_offsets: Sequence[int], bucket: Bucket) -> tuple[list[Hashable], np.ndarray, list[int]]:
    """Labels, the ``(L, B)`` membership of window rows, and each label's DM horizon (largest offset, >= 1)."""
    offsets = [int(o) for o in step_offsets]
    if bucket is None:
        keys = offsets
    elif callable(bucket):
        keys = [bucket(o) for o in offsets]
    else:
        keys = [bucket.get(o) for o in offsets]
    labels = list(dict.fromkeys(k for k in keys if k is not None))
    try:
        labels.sort()
    except TypeError:
        pass
    member = np.array([[k == label for label in labels] for k in keys], dtype=np.float64).reshape(len(keys), -1)
    lags = [max(1, max(o for o, k in zip(offsets, keys, strict=True) if k == label)) for label in labels]
    return labels, member, lags


def _groups(field_groups: Sequence[Hashable], F: int) -> tuple[list[Hashable], np.ndarray]:
    """Group labels (first-seen order, then ``all``) and the ``(F, G)`` membership of fields."""
    if len(field_groups) != F:
        raise ValueError(f"field_groups has {len(field_groups)} entries for {F} fields")
    labels = list(dict.fromkeys(field_groups))
    if ALL in labels:
        raise ValueError(f"a field group may not be named '{ALL}': that name is the row of all fields")
    member = np.array([[g == label for label in labels] + [True] for g in field_groups], dtype=np.float64)
    return [*labels, ALL], member


def _reduce(cells: np.ndarray, fields: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``(n, L, F)`` -> per anchor, row bucket and field group sums ``(n, B, G)``."""
    return np.einsum("nlf,fg,lb->nbg", cells, fields, rows, optimize=True)


def score_forecasts(truth: np.ndarray, score_mask: np.ndarray, predictions: Mapping[str, np.ndarray],
                    field_groups: Sequence[Hashable], step_offsets: Sequence[int], reference: str = "persistence",
                    horizon_buckets: Bucket = None, chunk: int = 256) -> pd.DataFrame:
    """One row per (model, field group, horizon): counts, MSE, MAE, skill and a DM test against ``reference``.

    ``truth``, each prediction and ``score_mask``: ``(n, L, F)``. ``field_groups``: a label per field
    (a row ``all`` covers every field). ``step_offsets``: window row -> step minus anchor (0 is the
    nowcast of the anchor step, > 0 forecasts, < 0 late releases); ``horizon_buckets`` (mapping or
    function of the offset; ``None`` drops an offset) groups them, and labels the ``horizon`` column.

    Columns: ``n_cells`` (scored cells the model forecasts: NaN predictions are excluded), ``mse``,
    ``mae``, ``n_common`` (cells both the model and the reference forecast), ``skill`` ``= 1 -
    MSE / MSE_reference`` on those common cells, ``n_anchors`` (anchors with common cells) and
    ``dm_stat``/``dm_pvalue``: :func:`diebold_mariano` on the per-anchor MSE over the common cells of
    the group and horizon, model minus reference (negative: the model is better), with the
    bucket's largest offset (at least 1) as the horizon.
    """
    truth = np.asarray(truth)
    score_mask = np.asarray(score_mask, dtype=bool)
    if truth.ndim != 3 or score_mask.shape != truth.shape:
        raise ValueError(f"truth and score_mask must be (n, L, F) alike, got {truth.shape} and {score_mask.shape}")
    if reference not in predictions:
        raise ValueError(f"reference '{reference}' is not among the predictions {list(predictions)}")
    for name, pred in predictions.items():
        if np.shape(pred) != truth.shape:
            raise ValueError(f"prediction '{name}' has shape {np.shape(pred)}, expected {truth.shape}")
    n, L, F = truth.shape
    if len(step_offsets) != L:
        raise ValueError(f"step_offsets has {len(step_offsets)} entries for {L} window rows")
    horizons, rows, lags = _buckets(step_offsets, horizon_buckets)
    groups, fields = _groups(field_groups, F)
    names = list(predictions)
    sums = {name: [] for name in names}  # per chunk: (6, n_chunk, B, G)
    for lo in range(0, n, chunk):
        t = truth[lo:lo + chunk].astype(np.float64)
        scored = score_mask[lo:lo + chunk] & np.isfinite(t)
        ref = np.asarray(predictions[reference][lo:lo + chunk], dtype=np.float64)
        ref_ok = scored & np.isfinite(ref)
        ref_sq = np.where(ref_ok, (ref - t) ** 2, 0.0)
        for name in names:
            pred = np.asarray(predictions[name][lo:lo + chunk], dtype=np.float64)
            ok = scored & np.isfinite(pred)
            err = np.where(ok, pred - t, 0.0)
            common = ok & ref_ok
            parts = (ok, err ** 2, np.abs(err), common, np.where(common, err ** 2, 0.0), np.where(common, ref_sq, 0.0))
            sums[name].append(np.stack([_reduce(p.astype(np.float64), fields, rows) for p in parts]))
    records = []
    for name in names:
        count, sq, ab, n_common, sq_c, ref_c = np.concatenate(sums[name], axis=1) if sums[name] else \
            np.zeros((6, 0, len(horizons), len(groups)))
        with np.errstate(invalid="ignore", divide="ignore"):
            loss, ref_loss = sq_c / n_common, ref_c / n_common  # per anchor; NaN where no common cell
        for b, horizon in enumerate(horizons):
            for g, group in enumerate(groups):
                cells, both = int(count[:, b, g].sum()), int(n_common[:, b, g].sum())
                ref_total = float(ref_c[:, b, g].sum())
                skill = 1.0 - float(sq_c[:, b, g].sum()) / ref_total if both and ref_total > 0 else math.nan
                stat, pvalue = diebold_mariano(loss[:, b, g], ref_loss[:, b, g], lags[b])
                records.append({
                    "model": name, "group": group, "horizon": horizon, "n_cells": cells,
                    "mse": float(sq[:, b, g].sum()) / cells if cells else math.nan,
                    "mae": float(ab[:, b, g].sum()) / cells if cells else math.nan,
                    "n_common": both, "skill": skill, "n_anchors": int((n_common[:, b, g] > 0).sum()),
                    "dm_stat": stat, "dm_pvalue": pvalue,
                })
    return pd.DataFrame.from_records(records, columns=["model", "group", "horizon", "n_cells", "mse", "mae",
                                                       "n_common", "skill", "n_anchors", "dm_stat", "dm_pvalue"])


def imputation_scores(truth: np.ndarray, mask: np.ndarray, prediction: np.ndarray, mean_prediction: np.ndarray,
                      field_groups: Sequence[Hashable] | None = None) -> pd.DataFrame:
    """Reconstruction of held-out fields: the model's MSE against predicting each field's training mean.

    ``truth``, ``mask``, ``prediction``: ``(..., F)``; ``mean_prediction``: broadcastable to them
    (usually the ``(F,)`` training means, about 0 in normalised units). Cells where the mask is set
    and truth and both predictions are finite are scored. One row per field group (when given) and
    ``all``: ``n_cells``, ``mse``, ``mse_mean``, ``ratio = mse / mse_mean`` (below 1: better than
    the mean) and ``skill = 1 - ratio``.
    """
    truth = np.asarray(truth, dtype=np.float64)
    prediction = np.asarray(prediction, dtype=np.float64)
    if prediction.shape != truth.shape or np.shape(mask) != truth.shape:
        raise ValueError(f"truth {truth.shape}, mask {np.shape(mask)} and prediction {prediction.shape} must match")
    mean = np.broadcast_to(np.asarray(mean_prediction, dtype=np.float64), truth.shape)
    ok = np.asarray(mask, dtype=bool) & np.isfinite(truth) & np.isfinite(prediction) & np.isfinite(mean)
    F = truth.shape[-1]
    if field_groups is None:
        groups, member = [ALL], np.ones((F, 1))
    else:
        groups, member = _groups(field_groups, F)
    flat = ok.reshape(-1, F)
    model = np.where(ok, (prediction - truth) ** 2, 0.0).reshape(-1, F).sum(axis=0) @ member
    baseline = np.where(ok, (mean - truth) ** 2, 0.0).reshape(-1, F).sum(axis=0) @ member
    cells = flat.sum(axis=0) @ member
    records = []
    for g, group in enumerate(groups):
        mse = model[g] / cells[g] if cells[g] else math.nan
        mse_mean = baseline[g] / cells[g] if cells[g] else math.nan
        ratio = mse / mse_mean if cells[g] and mse_mean > 0 else math.nan
        records.append({"group": group, "n_cells": int(cells[g]), "mse": mse, "mse_mean": mse_mean, "ratio": ratio,
                        "skill": 1.0 - ratio})
    return pd.DataFrame.from_records(records, columns=["group", "n_cells", "mse", "mse_mean", "ratio", "skill"])
