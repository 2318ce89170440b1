"""Which field groups are forecastable, and how the model does on them.

A group is *forecastable* when a classical model (per-field AR, or the dynamic factor model where it
was fitted) beats the naive forecast on it significantly on the **validation** windows: skill > 0 with
a Diebold-Mariano p < 0.05, pooled over the cells at and after the anchor, with at least
``min_cells`` cells. The choice never sees the test period. On those groups the targets compare the
model's *test* skill with the classical model's test skill on the same cells: the model should be at
least as good as AR there (minus a tolerance), and clearly better than naive.

The classical models (and the climatology mean) are fitted only on the steps before the first
validation anchor, so the validation scores are out of sample. Measured cause: fitted on the whole
training period, which contains the validation windows, AR "beat" persistence on a pure random walk
with skill 0.22 (DM p 0.03) in the tests' synthetic canvas, because it mean-reverted to a level it
had already seen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from gwm_model.canvas.canvas import Canvas
from gwm_model.evaluation.baselines import baseline_forecasts, step_offsets, window_cells
from gwm_model.evaluation.headline import MIN_GROUP_CELLS, SIGNIFICANT
from gwm_model.evaluation.naive import validation_fit_end
from gwm_model.evaluation.scores import score_forecasts

CLASSICAL = ("ar", "dfm")


def forecastable_groups(canvas: Canvas, anchors: np.ndarray, context: int, horizon: int, train_end_step: int,
                        outputs: np.ndarray, groups: Sequence[str], use_climatology: np.ndarray,
                        classical: Sequence[str] = ("ar",), min_cells: int = MIN_GROUP_CELLS,
                        dfm_options: dict | None = None) -> dict[str, dict[str, object]]:
    """Group -> ``{"forecaster", "val_skill", "dm_pvalue", "n_cells"}`` for each group a classical model beats
    naive on significantly at ``anchors`` (validation anchors); the best such forecaster when several do."""
    classical = [c for c in classical if c in CLASSICAL]
    anchors = np.asarray(anchors, dtype=np.int64)
    if not classical or anchors.size == 0:
        return {}
    cells = window_cells(canvas, anchors, context, horizon)
    offsets = step_offsets(context, horizon)
    scored = cells.hidden & (offsets >= 0)[None, :, None] & outputs[None, None, :]
    fit_end = validation_fit_end(anchors, train_end_step)  # out of sample: nothing from the validation windows
    made = baseline_forecasts(canvas, anchors, context, horizon, fit_end,
                              models=("persistence", "mean", *classical), **(dfm_options or {}))
    predictions = {"naive": np.where(use_climatology[None, None, :], made["mean"], made["persistence"]),
                   **{c: made[c] for c in classical if c in made}}
    table = score_forecasts(cells.truth, scored, predictions, list(groups), offsets.tolist(), reference="naive",
                            horizon_buckets=lambda o: "all" if o >= 0 else None)
    table = table[(table["group"] != "all") & (table["model"] != "naive")]
    found: dict[str, dict[str, object]] = {}
    for row in table.itertuples(index=False):
        good = (row.n_common >= min_cells and math.isfinite(row.skill) and row.skill > 0
                and math.isfinite(row.dm_pvalue) and row.dm_pvalue < SIGNIFICANT)
        if good and (row.group not in found or row.skill > found[row.group]["val_skill"]):
            found[str(row.group)] = {"forecaster": row.model, "val_skill": float(row.skill),
                                     "dm_pvalue": float(row.dm_pvalue), "n_cells": int(row.n_common)}
    return found


def forecastable_summary(test_table: pd.DataFrame, found: dict[str, dict[str, object]], model: str = "model",
                         horizon: object = "all") -> dict[str, object]:
    """The model's and the classical models' test skill over the forecastable groups ``found``.

    ``forecastable_group_skill``: mean model skill against naive over those groups (None when there are none
    or none has test cells); ``forecastable_classical_skill``: the same mean for the classical forecaster that
    made each group forecastable; ``forecastable``: per group, both test skills and the validation evidence."""
    rows = test_table[(test_table["horizon"] == horizon) & (test_table["group"].isin(list(found)))]
    per_group: dict[str, dict[str, object]] = {}
    for group, evidence in found.items():
        mine = rows[(rows["group"] == group) & (rows["model"] == model)]
        theirs = rows[(rows["group"] == group) & (rows["model"] == evidence["forecaster"])]
        if not len(mine) or not mine.iloc[0]["n_common"] or not math.isfinite(float(mine.iloc[0]["skill"])):
            continue
        per_group[group] = {**evidence, "test_skill": float(mine.iloc[0]["skill"]),
                            "test_classical_skill": float(theirs.iloc[0]["skill"]) if len(theirs) else None,
                            "test_cells": int(mine.iloc[0]["n_common"])}
    skills = [g["test_skill"] for g in per_group.values()]
    classical = [g["test_classical_skill"] for g in per_group.values() if g["test_classical_skill"] is not None
                 and math.isfinite(g["test_classical_skill"])]
    return {"forecastable_groups": sorted(per_group),
            "forecastable_group_skill": float(np.mean(skills)) if skills else None,
            "forecastable_classical_skill": float(np.mean(classical)) if classical else None,
            "forecastable": per_group}
