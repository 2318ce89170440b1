"""Forecast skill of every curriculum node, and its spread over seeds and over the train/test split.

Input: the warehouse `make run` leaves in ``warehouse/`` (copied to a temporary directory: nothing of
the project's own state changes). Each *variant* is the standard curriculum with one change, written
to a temporary curriculum file (``GWM_CURRICULUM``): the training seed (0, 1, 2) or ``train_fraction``
moved by the share of the axis that makes about three years (``train_end`` three years earlier and
later; the canvases are rebuilt for it). Each variant materializes every ``canvas/<node>`` and
``train/<node>`` (``force: true``) with ``dagster asset materialize`` and reads back ``checkpoints``
and ``forecast_scores``.

Reported per node and variant: ``median_group_skill`` (median over field groups with >= 100 scored
cells of the model's skill against naive, pooled horizon), groups scored / significantly worse than
naive / beating AR, ``forecastable_group_skill`` and the classical model's on the same groups, the
canvas's ``train_end``; then per node the median, min and max over variants. Ablation rows from the
same runs and cells: ``no_gate`` (the network's forecast before the do-no-harm gate, forecaster
``model_raw``), and each of :data:`ABLATIONS` (seed0 with one training setting changed:
``change_space`` trains the correction in units of each field's one-step change instead of level
units; ``persistence_base`` starts the prediction from the last value in the window instead of each field's
AR forecast, the model before the AR base; ``level_inputs`` has the encoder read levels instead of movements relative
to each field's level at the anchor; ``masked_objective`` trains as the ``cpu`` profile did before it trained
on the forecasting task alone: besides what is not yet published at the anchor and every step after it, 15% of the
visible cells, 15% of the fields for a whole window and one span of up to 8 steps in a quarter of the fields are
hidden, so much of the gradient goes to interpolation inside the window; ``masked_selection`` is that objective
validated and early-stopped on itself instead of on the forecasting task (with the default's masking rates of 0 the
two measures are the same); ``frequent_validation`` validates every 25 steps instead of once per epoch, so model
selection and early stopping choose among four or five points of a node's run instead of
two). ``horizon13`` (:data:`HORIZONS`) is seed0 with the window reaching 13 steps past the anchor instead of 4: its
skill per group at horizons 1, 4 and 13, against AR and DFM. ``GWM_BENCH_SKILL_VARIANTS`` picks variants
(comma-separated names), for example ``seed0,seed1``; ``GWM_BENCH_SKILL_PROFILE`` a profile (default: the
curriculum's default, ``cpu``).
Results land under ``results.skill`` of ``bench/results/bench.json``.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import yaml

from gwm_assets.resources.paths import PACKAGE_ROOT, curriculum_path, warehouse_path
from gwm_model.training.objectives import MaskingConfig

YEARS_MOVED = 3
PARTIAL = Path(__file__).parent / "results" / "skill_partial.json"
# what the cpu profile hid before it trained on the forecasting task alone: the library's default rates
MASKED_RATES = {k: getattr(MaskingConfig(), k) for k in ("cell_rate", "field_rate", "span_rate")}
# Ablations: seed0 with one training setting changed (same cells, same split); not part of the spread.
ABLATIONS = {"change_space": {"target_space": "change"}, "persistence_base": {"base_forecast": "persistence"},
             "level_inputs": {"model": {"relative_inputs": False}},
             "masked_selection": {"select_on": "masked", "masking": MASKED_RATES},
             "masked_objective": {"masking": MASKED_RATES},
             "frequent_validation": {"eval_steps": 25}}
# Longer horizons: seed0 with the window reaching further past the anchor. Its cells differ (each origin needs that
# many steps after it, and every horizon is pooled into the median), so it sits neither in the spread nor beside the
# ablations: it is reported per group and horizon, the model against AR and DFM.
HORIZONS = {"horizon13": {"horizon": 13}}
REPORTED_HORIZONS = ("1", "4", "13")
SCORED = ("median_group_skill", "groups_scored", "groups_worse_than_naive", "groups_beating_ar",
          "forecastable_group_skill", "forecastable_classical_skill", "worst_surviving_share",
          "worst_forecast_surviving_share")


def variants(axis_years: float) -> dict[str, dict[str, float]]:
    """Name -> the change: ``seed`` and/or ``train_fraction_shift`` (three years of an ``axis_years`` axis)."""
    shift = round(YEARS_MOVED / axis_years, 3)
    return {"seed0": {"seed": 0}, "seed1": {"seed": 1}, "seed2": {"seed": 2},
            f"train_end-{YEARS_MOVED}y": {"seed": 0, "train_fraction_shift": -shift},
            f"train_end+{YEARS_MOVED}y": {"seed": 0, "train_fraction_shift": shift},
            **{name: {"seed": 0, **train} for name, train in {**ABLATIONS, **HORIZONS}.items()}}


def write_curriculum(base: dict, change: dict[str, float], profile: str, out: Path) -> Path:
    doc = copy.deepcopy(base)
    doc["default_profile"] = profile  # what the materialization trains with (it reads no profile of its own)
    shift = change.get("train_fraction_shift", 0.0)
    doc["canvas"]["train_fraction"] = round(doc["canvas"]["train_fraction"] + shift, 4)
    train = doc["profiles"][profile].setdefault("train", {})
    train["seed"] = int(change.get("seed", 0))
    train.update({k: v for k, v in change.items() if k not in ("seed", "train_fraction_shift", "model")})
    doc["profiles"][profile].setdefault("model", {}).update(change.get("model", {}))
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def _materialize(home: Path, warehouse: Path, curriculum: Path, nodes: list[str]) -> float:
    config = {"resources": {"training": {"config": {"force": True,
                                                     "checkpoints_path": str(warehouse.parent / "checkpoints")}}}}
    (home / "run.yaml").write_text(json.dumps(config))
    env = {**os.environ, "DAGSTER_HOME": str(home), "GWM_WAREHOUSE": str(warehouse), "GWM_CURRICULUM": str(curriculum)}
    selection = ",".join([*(f"canvas/{n}" for n in nodes), "train/trunk", *(f"train/{n}" for n in nodes)])
    started = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m",
                           "gwm_assets.definitions", "--select", selection, "-c", str(home / "run.yaml")],
                          env=env, cwd=PACKAGE_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bench skill: the run failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return time.perf_counter() - started


def _imputation_ratio(checkpoint: str | None) -> float | None:
    """Held-out-field imputation of the node's test windows, MSE over the training mean's (the checkpoint's
    evaluation summary; None where it has none): what a change of the training objective may cost besides
    forecasting."""
    manifest = Path(checkpoint or "") / "manifest.json"
    if not checkpoint or not manifest.is_file():
        return None
    summary = (json.loads(manifest.read_text()).get("evaluation") or {}).get("summary") or {}
    return summary.get("imputation_ratio")


def read_scores(warehouse: Path) -> dict[str, dict[str, object]]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        heads = conn.execute(f"""SELECT c.node, {', '.join('c.' + s for s in SCORED)}, c.forecastable_groups,
                                        v.train_end, c.path
                                 FROM checkpoints c JOIN canvases v USING (node)""").fetchall()
        groups = conn.execute("""SELECT node, field_group, forecaster, n_cells, skill, dm_pvalue FROM forecast_scores
                                 WHERE horizon = 'all' AND field_group <> 'all' AND n_cells >= 100
                                   AND forecaster IN ('model', 'model_raw', 'ar', 'dfm')""").fetchall()
        # per horizon (canvas steps after the anchor) for the scored groups: the model against the classical models
        horizons = conn.execute("""SELECT s.node, s.field_group, s.horizon, s.forecaster, s.skill FROM forecast_scores s
                                   JOIN forecast_scores a ON a.node = s.node AND a.field_group = s.field_group
                                    AND a.forecaster = 'model' AND a.horizon = 'all' AND a.n_cells >= 100
                                   WHERE s.horizon NOT IN ('all', 'context') AND s.field_group <> 'all'
                                     AND s.forecaster IN ('model', 'ar', 'dfm')""").fetchall()
    out: dict[str, dict[str, object]] = {}
    for node, *values, forecastable, train_end, checkpoint in heads:
        out[node] = {**dict(zip(SCORED, values, strict=True)), "forecastable_groups": forecastable,
                     "train_end": str(train_end), "imputation_ratio": _imputation_ratio(checkpoint), "groups": {}}
    for node, group, forecaster, cells, skill, pvalue in groups:
        row = out.setdefault(node, {"groups": {}})["groups"].setdefault(group, {"n_cells": cells})
        row[forecaster] = skill
        if forecaster == "model":
            row["dm_pvalue"] = pvalue
    for node, group, horizon, forecaster, skill in horizons:
        group_row = out.setdefault(node, {"groups": {}})["groups"].setdefault(group, {})
        row = group_row.setdefault("by_horizon", {}).setdefault(str(horizon), {})
        row[forecaster] = skill
    return out


def _spread(values: list[float | None]) -> dict[str, float | None]:
    got = [v for v in values if v is not None]
    if not got:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(got), "min": min(got), "max": max(got), "n": len(got)}


def summarise(per_variant: dict[str, dict[str, dict[str, object]]]) -> dict[str, object]:
    ablated = {name: scores for name, scores in per_variant.items() if name in ABLATIONS}
    longer = {name: scores for name, scores in per_variant.items() if name in HORIZONS}
    per_variant = {name: scores for name, scores in per_variant.items() if name not in ABLATIONS | HORIZONS}
    nodes = sorted({n for scores in per_variant.values() for n in scores})
    spread, ablation = {}, {}
    for node in nodes:
        runs = [scores.get(node, {}) for scores in per_variant.values()]
        spread[node] = {key: _spread([r.get(key) for r in runs]) for key in ("median_group_skill",
                                                                              "forecastable_group_skill")}
        spread[node]["worse_than_naive_max"] = max((r.get("groups_worse_than_naive") or 0) for r in runs)
        raw = [statistics.median([g["model_raw"] for g in r.get("groups", {}).values() if g.get("model_raw")
                                  is not None]) for r in runs if any(g.get("model_raw") is not None
                                                                     for g in r.get("groups", {}).values())]
        ablation[node] = {"gated_median_group_skill": spread[node]["median_group_skill"]["median"],
                          "no_gate_median_group_skill": statistics.median(raw) if raw else None}
        seed0 = per_variant.get("seed0", {}).get(node, {})
        for name, scores in ablated.items():  # the same node, seed and split with one setting changed
            ablation[node][name] = {key: scores.get(node, {}).get(key) for key in
                                    ("median_group_skill", "groups_worse_than_naive", "forecastable_group_skill")}
            ablation[node][name]["seed0_median_group_skill"] = seed0.get("median_group_skill")
    return {"spread": spread, "ablation": ablation, "horizons": by_horizon(longer)}


def by_horizon(per_variant: dict[str, dict[str, dict[str, object]]]) -> dict[str, object]:
    """Variant -> node -> scored group -> :data:`REPORTED_HORIZONS` (those the window reaches) -> the model's, AR's
    and DFM's skill against naive there, with the node's median over groups at each horizon."""
    out: dict[str, object] = {}
    for name, scores in per_variant.items():
        out[name] = {}
        for node, row in scores.items():
            groups = {g: {h: v["by_horizon"][h] for h in REPORTED_HORIZONS if h in v.get("by_horizon", {})}
                      for g, v in row.get("groups", {}).items()}
            medians = {h: statistics.median(skills) for h in REPORTED_HORIZONS
                       if (skills := [v[h]["model"] for v in groups.values() if v.get(h, {}).get("model") is not None])}
            out[name][node] = {"median_group_skill": medians, "groups": groups}
    return out


def run() -> dict[str, object]:
    source = warehouse_path()
    if not source.exists():
        raise RuntimeError(f"bench skill needs the warehouse of `make run` at {source}")
    base = yaml.safe_load(curriculum_path().read_text())
    profile = os.environ.get("GWM_BENCH_SKILL_PROFILE") or base.get("default_profile", "cpu")
    with duckdb.connect(str(source), read_only=True) as conn:
        first, last = conn.execute("SELECT min(start_date), max(end_date) FROM canvases").fetchone()
    axis_years = (last - first).days / 365.25
    chosen = variants(axis_years)
    wanted = [v for v in os.environ.get("GWM_BENCH_SKILL_VARIANTS", "").split(",") if v]
    if wanted:
        unknown = set(wanted) - set(chosen)
        if unknown:
            raise ValueError(f"bench skill: unknown variants {sorted(unknown)}; use some of {list(chosen)}")
        chosen = {k: v for k, v in chosen.items() if k in wanted}
    nodes = list(base["nodes"]) if isinstance(base.get("nodes"), dict) else [n["name"] for n in base["nodes"]]
    per_variant, seconds = {}, {}
    with tempfile.TemporaryDirectory(prefix="gwm-bench-skill-") as tmp:
        root = Path(tmp)
        for name, change in chosen.items():
            print(f"bench skill: {name} ({change}) ...", flush=True)
            warehouse = root / name / "warehouse" / "gwm.duckdb"
            warehouse.parent.mkdir(parents=True)
            shutil.copy(source, warehouse)
            home = root / name / "dagster_home"
            home.mkdir()
            shutil.copy(PACKAGE_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
            curriculum = write_curriculum(base, change, profile, root / name / "curriculum.yaml")
            seconds[name] = _materialize(home, warehouse, curriculum, nodes)
            per_variant[name] = read_scores(warehouse)
            PARTIAL.parent.mkdir(exist_ok=True)  # a long run keeps what it measured even if it is stopped
            PARTIAL.write_text(json.dumps({"seconds": seconds, "per_variant": per_variant}, indent=1, default=str))
            shutil.rmtree(root / name / "warehouse" / "checkpoints", ignore_errors=True)
    return {"profile": profile, "axis_years": round(axis_years, 1), "variants": chosen, "seconds": seconds,
            "per_variant": per_variant, **summarise(per_variant)}
