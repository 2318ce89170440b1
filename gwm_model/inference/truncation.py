"""The truncation test: is a forecast from the masked canvas the forecast from the data as it stood at the origin?

Training and evaluation read one canvas that holds the whole history and hide, per window, every cell published
after the window's origin. A leak in that masking (a value visible before its ``available_at``, a normalisation or
a carried-forward value that reads ahead) would show as skill the model could never have in use. The test makes
the same forecasts twice: once from the whole record observed at its newest instant, as the evaluation does
(``masked``), and once per origin from the observations *cut* at that origin, re-encoded into a canvas of their
own (``cut``): nothing published after the origin exists there. Where the two agree, the masked forecast read
nothing it should not have; where a returns-like field's skill comes from the masked path alone, it is a leak.

Known, expected difference: a daily series on a weekly canvas. The cut data holds a partial last week (the days
published by the origin); the masked canvas holds the whole week's value, published at the week's end, so it
hides that cell until then. The cut path then knows a little more, never less.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import pandas as pd
import polars as pl

from gwm_model.canvas.observations import as_frame
from gwm_model.inference.frames import observations_table
from gwm_model.inference.world_model import WorldModel

KEYS = ["as_of", "field_path", "offset"]


def _ungated(model: WorldModel) -> WorldModel:
    """A copy of ``model`` that serves the network's forecast (no do-no-harm gate)."""
    out = copy.copy(model)
    out.manifest = {**model.manifest, "evaluation": {k: v for k, v in (model.manifest.get("evaluation") or {}).items()
                                                     if not k.startswith("gate")}}
    return out


def _hidden_cells(model: WorldModel, origins: np.ndarray, fields: Sequence[str], samples: int, seed: int,
                  actual: bool) -> pd.DataFrame:
    """One row per window cell of ``fields`` not yet published at its origin (late releases inside the context,
    offset < 0, and the steps from the origin's on): the model's forecast of it, the naive one, and (``actual``)
    the value the observed canvas holds there."""
    out = model.windows(origins, list(fields), samples, seed)
    canvas = model.canvas
    b, row, k = np.nonzero(~out.visible)
    steps = out.steps[b, row]
    frame = pd.DataFrame({"as_of": origins[b], "field_path": np.asarray(fields, dtype=object)[k],
                          "offset": steps - out.anchors[b], "step": steps, "mean": out.mean[b, row, k],
                          "naive": out.naive[b, k]})
    frame = frame[(steps >= 0) & (steps < canvas.num_steps)].reset_index(drop=True)
    if actual:
        f = np.array([model.layout.paths.index(p) for p in frame["field_path"]])
        s = frame["step"].to_numpy()
        mu = np.array([model.stats.mean[p] for p in frame["field_path"]])
        sd = np.array([model.stats.std[p] for p in frame["field_path"]])
        values = canvas.values[s, canvas.offsets[f]].astype(np.float64) * sd + mu
        frame["actual"] = np.where(canvas.presence[s, f], values, np.nan)
        frame["target_ts"] = canvas.axis.starts[s]
    return frame.drop(columns="step")


def truncation_test(model: WorldModel, observations, fields: Sequence[str], origins: Sequence | np.ndarray,
                    gated: bool = True, samples: int = 32, seed: int = 0) -> pd.DataFrame:
    """Per origin, field and window ``offset`` (steps from the origin's; negative: a late release inside the
    context) of every cell not yet published at the origin: ``masked`` (the forecast from the whole record, hiding
    what was published after the origin), ``cut`` (from the observations with ``available_at <= origin`` only),
    ``naive`` (from the whole record), ``actual`` (the whole record's value; NaN where it has none),
    ``target_ts`` and ``difference = masked - cut`` (NaN where one path has no such hidden cell). ``gated=False``
    audits the network's own forecast (no do-no-harm gate)."""
    frame = as_frame(observations_table(observations))
    origins = np.unique(np.asarray(origins, dtype="datetime64[us]").reshape(-1))
    if origins.size == 0:
        raise ValueError("truncation test: no origins given")
    published = frame["available_at"].cast(pl.Datetime("us"))
    if origins[-1] > np.datetime64(published.max(), "us"):
        raise ValueError(f"truncation test: origin {origins[-1]} is after the newest publication {published.max()}")
    audited = model if gated else _ungated(model)
    whole = _hidden_cells(audited.observe(frame), origins, fields, samples, seed, actual=True)
    cut = pd.concat([_hidden_cells(audited.observe(frame.filter(published <= origin.item()), as_of=origin),
                                   origins[i:i + 1], fields, samples, seed, actual=False)
                     for i, origin in enumerate(origins)], ignore_index=True)
    out = whole.rename(columns={"mean": "masked"}).merge(
        cut[[*KEYS, "mean"]].rename(columns={"mean": "cut"}), on=KEYS, how="outer")
    out["difference"] = out["masked"] - out["cut"]
    return out.sort_values(KEYS, ignore_index=True)


def truncation_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per field: rows, rows hidden in one path only, the largest and median absolute ``masked - cut`` difference,
    and the skill of each path against the naive forecast on the rows where the actual value is known and both
    paths forecast (``1 - MSE / MSE_naive``)."""
    rows = []
    for path, part in table.groupby("field_path", sort=True):
        scored = part.dropna(subset=["actual", "masked", "cut", "naive"])
        naive = float(((scored["naive"] - scored["actual"]) ** 2).mean()) if len(scored) else np.nan

        def skill(column: str, scored=scored, naive=naive) -> float:
            if not len(scored) or not naive > 0:
                return np.nan
            return 1.0 - float(((scored[column] - scored["actual"]) ** 2).mean()) / naive

        gap = part["difference"].abs()
        rows.append({"field_path": path, "rows": len(part),
                     "one_path_only": int(part[["masked", "cut"]].isna().any(axis=1).sum()), "scored": len(scored),
                     "max_abs_difference": gap.max(),
                     "median_abs_difference": gap.median(), "skill_masked": skill("masked"),
                     "skill_cut": skill("cut")})
    return pd.DataFrame(rows)
