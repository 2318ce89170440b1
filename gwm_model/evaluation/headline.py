"""A node's headline from its score table: the median skill over field groups, never a pooled MSE.

A pooled MSE is dominated by whichever group has the largest normalised errors (a few volatile
returns, a field normalised from a handful of points), so it can hide harm elsewhere. The headline
takes, at the pooled horizon, every field group (the first two levels of the path) with at least
``min_cells`` scored cells and reports the median of the model's skill against the naive forecast,
how many groups were scored, in how many the model is significantly worse than naive
(Diebold-Mariano p < 0.05 with a positive statistic) and in how many it beats per-field AR (lower
MSE on the same cells). Groups below ``min_cells`` are listed, not scored: with too few cells a
skill is noise.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

MIN_GROUP_CELLS = 100
SIGNIFICANT = 0.05


def group_headline(table: pd.DataFrame, horizon: object = "all", min_cells: int = MIN_GROUP_CELLS,
                   model: str = "model", ar: str = "ar") -> dict[str, object]:
    """``median_group_skill`` (None when no group has ``min_cells``), ``groups_scored``,
    ``groups_worse_than_naive``, ``groups_beating_ar`` (None without an AR row), ``group_skill`` (group -> skill)
    and ``groups_too_small`` (group -> cells) from a :func:`~gwm_model.evaluation.scores.score_forecasts`
    table whose reference is the naive forecast."""
    rows = table[(table["horizon"] == horizon) & (table["group"] != "all")]
    mine = rows[rows["model"] == model].set_index("group")
    theirs = rows[rows["model"] == ar].set_index("group")
    scored = mine[(mine["n_common"] >= min_cells) & mine["skill"].map(lambda s: math.isfinite(float(s)))]
    small = mine[~mine.index.isin(scored.index) & (mine["n_cells"] > 0)]
    worse = scored[(scored["skill"] < 0) & (scored["dm_pvalue"] < SIGNIFICANT)]
    beating = None
    if len(theirs):
        common = scored.index.intersection(theirs.index)
        beating = int((scored.loc[common, "skill"] > theirs.loc[common, "skill"]).sum())
    return {"median_group_skill": float(np.median(scored["skill"])) if len(scored) else None,
            "groups_scored": int(len(scored)), "groups_worse_than_naive": int(len(worse)),
            "groups_beating_ar": beating,
            "group_skill": {str(g): float(s) for g, s in scored["skill"].items()},
            "groups_too_small": {str(g): int(n) for g, n in small["n_cells"].items()}}
