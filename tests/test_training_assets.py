"""The standard 12-node curriculum as real Dagster materializations (tiny profile): checkpoints, lineage,
the `checkpoints` table, metadata, keeping what is current, retraining only what a refresh made stale,
and reloading `full_integration` from its directory alone."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import dagster as dg
import duckdb
import numpy as np
import pytest
import yaml

from gwm_assets.canvases.assets import canvas_assets
from gwm_assets.definitions import DATA_ASSETS
from gwm_assets.resources.sources import SourceSettings
from gwm_assets.resources.training import TrainingResource
from gwm_assets.resources.warehouse import WarehouseResource
from gwm_assets.resources.world import WorldSchemaResource
from gwm_assets.training.assets import training_assets
from gwm_assets.training.checkpoint_table import record_checkpoint
from gwm_model.curriculum import STANDARD_CURRICULUM, load_curriculum
from gwm_model.curriculum.weights import load_node_weights
from gwm_model.inference import WorldModel
from gwm_model.training.checkpoint import CheckpointError

BASE = [a for a in DATA_ASSETS if not any(k.path[0] == "canvas" for k in a.keys)]
TINY = {"description": "test-sized",
        "model": {"d_model": 8, "n_heads": 2, "n_layers": 1, "n_loops": 1},
        "train": {"context": 6, "horizon": 2, "batch_size": 8, "steps": 4, "warmup_steps": 1, "patience": 2,
                  "loggers": []},
        "evaluation": {"baselines": ["persistence"], "max_anchors": 16},
        "merge": {"method": "mean"},
        "trunk": {"train": {"steps": 4}},
        "tiers": {1: {"model": {"n_layers": 2}}}}


def write_tabular(folder, weeks: int = 300, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    days = np.arange(np.datetime64("2016-01-04"), np.datetime64("2016-01-04") + weeks * 7, 7)
    rates = 2 + np.cumsum(rng.normal(0, 0.05, days.size))
    equity = 2000 * np.exp(np.cumsum(rng.normal(0, 0.02, days.size)))
    (folder / "mkt.csv").write_text("day,ten_year,sp500\n" + "".join(
        f"{d},{r:.4f},{e:.2f}\n" for d, r, e in zip(days, rates, equity, strict=True)))
    (folder / "mkt.yaml").write_text(
        "dataset: mkt\npath: mkt.csv\ndate_column: day\ncolumns:\n"
        "  ten_year: {field: financial.yield_curves.ten_year, frequency: weekly}\n"
        "  sp500: {field: financial.equities.indices.sp500, frequency: weekly}\n")
    months = np.arange(np.datetime64("2016-01"), np.datetime64("2016-01") + weeks // 4, 1)
    unrate = 5 + np.cumsum(rng.normal(0, 0.1, months.size))
    (folder / "jobs.csv").write_text("day,unrate\n" + "".join(
        f"{m}-01,{u:.3f}\n" for m, u in zip(months, unrate, strict=True)))
    (folder / "jobs.yaml").write_text(
        "dataset: jobs\npath: jobs.csv\ndate_column: day\ncolumns:\n"
        "  unrate: {field: country_us.macro.labor.unemployment_rate, frequency: monthly, release_lag_days: 35}\n")


# The synthetic tabular data fills finance and the US labour market only: the specialists it has no data for
# declare no sources, as in a project without such data (a node whose declared sources delivered for other
# fields but none of its own fails its canvas, see test_canvas_assets).
UNFILLED = ("basic_politics", "basic_technology", "basic_narratives", "basic_resources", "geopolitics_commodities")


def without_sources(doc: dict, nodes=UNFILLED) -> dict:
    for node in doc["nodes"]:
        if node["name"] in nodes:
            node["data_sources"] = []
    return doc


def tiny_project(root, doc: dict) -> tuple:
    """A project under ``root`` for real materializations: the curriculum ``doc`` as a file, the synthetic
    tabular series, a Dagster instance config and the resources (warehouse ``w.duckdb``, checkpoints beside)."""
    (root / "curriculum.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    curriculum = load_curriculum(root / "curriculum.yaml")
    folder = root / "tabular"
    folder.mkdir()
    write_tabular(folder)
    (root / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    resources = {"warehouse": WarehouseResource(path=str(root / "w.duckdb")),
                 "world": WorldSchemaResource(schema_path=""),
                 "settings": SourceSettings(live=False, fred_api_key="", plain_requests=True, tabular_dir=str(folder)),
                 "training": TrainingResource(checkpoints_path=str(root / "checkpoints"), profile="", torch_threads=0)}
    return curriculum, folder, resources


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("dag")
    doc = without_sources(yaml.safe_load(STANDARD_CURRICULUM.read_text()))
    doc["profiles"], doc["default_profile"] = {"tiny": TINY}, "tiny"
    curriculum, folder, resources = tiny_project(root, doc)
    assets = [*BASE, *canvas_assets(curriculum), *training_assets(curriculum)]
    base = ["fields", "source_series", "raw_tabular", "observations"]
    canvases = [f"canvas/{n}" for n in curriculum.nodes]
    trains = ["train/trunk", *(f"train/{n}" for n in curriculum.order())]

    def run(selection, **overrides):
        with dg.DagsterInstance.from_config(str(root)) as instance:
            return dg.materialize(assets, resources={**resources, **overrides}, instance=instance,
                                  selection=selection, raise_on_error=False)

    first = run([*base, *canvases, *trains])
    return {"root": root, "curriculum": curriculum, "first": first, "run": run, "folder": folder,
            "selection": [*base, *canvases, *trains]}


def metadata(result, prefix="train"):
    return {e.asset_key.path[-1]: e.materialization.metadata for e in result.get_asset_materialization_events()
            if e.asset_key.path[0] == prefix}


def test_all_twelve_nodes_and_the_trunk_materialize_with_lineage(trained):
    result, root = trained["first"], trained["root"]
    assert result.success, [e.event_specific_data for e in result.all_events if e.is_failure]
    meta = metadata(result)
    assert set(meta) == {"trunk", *trained["curriculum"].nodes}
    rows = duckdb.connect(str(root / "w.duckdb"), read_only=True).execute(
        "SELECT node, parents, steps, val_skill, trained FROM checkpoints ORDER BY tier, node").fetchall()
    assert len(rows) == 12
    by_node = {r[0]: r for r in rows}
    assert by_node["full_integration"][1] == ["corporate_strategy", "policy_impact", "narratives_drive_markets"]
    assert by_node["basic_finance"][2] == 4 and by_node["basic_finance"][4]
    assert by_node["basic_politics"][2] == 0 and not by_node["basic_politics"][4]  # no data: not trained
    manifests = {n: json.loads((root / "checkpoints" / n / "manifest.json").read_text())
                 for n in trained["curriculum"].nodes}
    trunk = json.loads((root / "checkpoints" / "trunk" / "manifest.json").read_text())
    child = manifests["econ_drives_finance"]
    assert {p["name"]: p["weights_sha256"] for p in child["lineage"]["parents"]} == {
        p: manifests[p]["weights_sha256"] for p in ("basic_finance", "basic_economics")}
    assert manifests["basic_finance"]["lineage"]["trunk"]["weights_sha256"] == trunk["weights_sha256"]
    report = child["merge"]["report"]
    assert report["method"] == "mean" and report["used"] == ["basic_finance", "basic_economics"]
    # a parent whose selection kept its starting weights is still at the trunk: only its field rows are merged
    assert all(manifests[p]["history"]["best_step"] == 0 for p in report["unchanged"])
    assert bool(report["averaged"]) is (len(report["unchanged"]) == 0)
    assert child["merge"]["report"]["zero_initialised_blocks"] == [1]  # tier 1 is one block deeper
    quality = child["merge"]["quality"]
    assert set(quality["parents"]) == {"basic_finance", "basic_economics"}
    assert [p["alpha"] for p in quality["parents"]["basic_finance"]["path"]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert child["profile"] == "tiny" and child["hyperparameters"]["model"]["n_layers"] == 2
    assert child["lineage"]["canvas_data_version"] and child["lineage"]["schema_hash"]
    assert child["code_version"] and child["seed"] == 0 and child["plan"]["fields"]
    # basic_narratives has no data (untrained, a copy of the trunk): left out of the average, and said so
    report = manifests["narratives_drive_markets"]["merge"]["report"]
    assert report["skipped"] == ["basic_narratives"] and report["used"] == ["basic_finance"]
    md = meta["full_integration"]
    assert md["loss_curve"].value.startswith("![full_integration loss](data:image/png;base64,")
    assert "persistence" in md["evaluation"].value and 0 < md["trainable_fraction"].value <= 1
    assert md["worst_surviving_share"] is not None and "max_loss_barrier" in md
    history = manifests["full_integration"]["history"]  # the step model selection kept, 0 for the starting weights
    assert md["selected_step"].value == history["best_step"] and 0 <= history["best_step"] <= manifests[
        "full_integration"]["steps"] and history["validations"][0]["step"] == 0


def test_scores_are_in_sql_per_group_horizon_and_forecaster_with_the_headline_beside(trained):
    conn = duckdb.connect(str(trained["root"] / "w.duckdb"), read_only=True)
    forecasters = {r[0] for r in conn.execute("SELECT DISTINCT forecaster FROM forecast_scores "
                                              "WHERE node = 'basic_finance'").fetchall()}
    # the gated model, the network before its gate, its own AR base before the network's correction, and the
    # baselines (the tiny profile asks for no AR)
    assert forecasters == {"model", "model_raw", "model_base", "persistence", "climatology", "naive"}
    manifest = json.loads((trained["root"] / "checkpoints" / "basic_finance" / "manifest.json").read_text())
    expected = {(r["group"], str(r["horizon"]), r["model"]): r["skill"] for r in manifest["evaluation"]["forecasts"]
                if r["n_cells"]}  # a group of the canvas with no scored cell is not a row
    stored = {(g, h, f): s for g, h, f, s in conn.execute(
        "SELECT field_group, horizon, forecaster, skill FROM forecast_scores WHERE node = 'basic_finance'").fetchall()}
    assert stored.keys() == expected.keys()
    assert all(stored[k] == pytest.approx(v) if v is not None else stored[k] is None for k, v in expected.items())
    # skill is against the naive forecast: naive scores exactly 0 wherever it is scored
    assert {s for (_, _, f), s in stored.items() if f == "naive" and s is not None} == {0.0}
    (versions,) = conn.execute("SELECT count(DISTINCT data_version) FROM forecast_scores f JOIN checkpoints c "
                               "USING (node) WHERE f.data_version = c.canvas_data_version").fetchone()
    assert versions == conn.execute("SELECT count(DISTINCT node) FROM forecast_scores").fetchone()[0]
    # tiny test windows: no group reaches 100 cells, so no headline, and the row says why (never a 0)
    heads = {r[0]: r[1:] for r in conn.execute("SELECT node, median_group_skill, groups_scored, "
                                               "groups_worse_than_naive, score_note FROM checkpoints").fetchall()}
    assert heads["basic_finance"][:3] == (None, 0, 0)
    assert heads["basic_finance"][3].startswith("no field group has 100 scored cells (financial.")
    assert heads["basic_politics"] == (None, None, None, "not evaluated: no data on the canvas")
    md = metadata(trained["first"])["basic_finance"]
    assert "| field group | cells | model | persistence | climatology |" in md["evaluation"].value
    assert md["test_forecasts"].value.startswith("![basic_finance test forecasts](data:image/png;base64,")


def test_an_older_checkpoints_table_gains_the_new_columns_and_keeps_its_rows(trained, tmp_path):
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE TABLE checkpoints (node VARCHAR PRIMARY KEY, tier INTEGER, steps INTEGER, "
                     "test_skill DOUBLE)")
        conn.execute("INSERT INTO checkpoints VALUES ('old_node', 0, 7, -0.5)")
        manifest = json.loads((trained["root"] / "checkpoints" / "basic_finance" / "manifest.json").read_text())
        record_checkpoint(conn, manifest, trained["root"] / "checkpoints" / "basic_finance", dt.datetime(2026, 1, 1))
        rows = dict(conn.execute("SELECT node, steps FROM checkpoints").fetchall())
        assert rows == {"old_node": 7, "basic_finance": 4}
        assert conn.execute("SELECT groups_scored FROM checkpoints WHERE node = 'basic_finance'").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM forecast_scores").fetchone()[0] > 0


def test_full_integration_reloads_from_its_directory_alone_and_predicts(trained):
    root = trained["root"]
    directory = root / "checkpoints" / "full_integration"
    copy = root / "elsewhere"
    shutil.copytree(directory, copy)
    observations = duckdb.connect(str(root / "w.duckdb"), read_only=True).execute(
        "SELECT field_path, ts, available_at, value, source FROM observations").pl()
    model = WorldModel.load(copy)
    frame = model.observe(observations, as_of="2020-06-01").predict(horizon=2)
    assert len(frame) and np.isfinite(frame["mean"]).all()
    assert set(frame["field_path"]) >= {"financial.yield_curves.ten_year", "financial.equities.indices.sp500"}


def test_a_second_run_keeps_every_checkpoint_and_a_refresh_retrains_only_the_stale(trained):
    root, run = trained["root"], trained["run"]
    before = {n: json.loads((root / "checkpoints" / n / "manifest.json").read_text())["weights_sha256"]
              for n in ["trunk", *trained["curriculum"].nodes]}
    again = metadata(run(trained["selection"]))
    assert all(m["kept"].value for n, m in again.items() if n != "trunk")
    # new monthly jobs data: only nodes whose canvases hold the unemployment rate change
    write_tabular(trained["folder"], weeks=330)
    jobs_only = (trained["folder"] / "jobs.csv").read_text()
    write_tabular(trained["folder"], weeks=300)
    (trained["folder"] / "jobs.csv").write_text(jobs_only)
    refreshed = metadata(run(trained["selection"]))
    retrained = {n for n, m in refreshed.items() if not m["kept"].value}
    assert retrained == {"basic_economics", "econ_drives_finance", "corporate_strategy", "policy_impact",
                         "full_integration"}
    after = {n: json.loads((root / "checkpoints" / n / "manifest.json").read_text())["weights_sha256"]
             for n in before}
    assert {n for n in before if before[n] != after[n]} == retrained


def test_a_corrupted_parent_checkpoint_fails_the_child_before_training(trained):
    root, run = trained["root"], trained["run"]
    weights = root / "checkpoints" / "basic_resources" / "weights.safetensors"
    manifest = root / "checkpoints" / "geopolitics_commodities" / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    force = TrainingResource(checkpoints_path=str(root / "checkpoints"), torch_threads=0, force=True)
    result = run(["train/geopolitics_commodities"], training=force)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.event_specific_data.error.message + "".join(
        c.message for c in [failure.event_specific_data.error.cause] if c)
    assert "geopolitics_commodities" in message and str(weights) in message
    assert manifest.stat().st_mtime_ns == stamp  # nothing was written
    with pytest.raises(CheckpointError, match="do not match the sha256"):
        load_node_weights(weights.parent, "basic_resources")


def test_integration_gain_compares_full_integration_with_each_specialist_on_shared_groups():
    from gwm_assets.training.checkpoint_table import CHECKPOINT_COLUMNS, INTEGRATION_GAIN, SCORE_COLUMNS, _ensure

    with duckdb.connect() as conn:
        _ensure(conn, "checkpoints", CHECKPOINT_COLUMNS)
        _ensure(conn, "forecast_scores", SCORE_COLUMNS, key="node, field_group, horizon, forecaster")
        conn.executemany("INSERT INTO checkpoints (node, tier) VALUES (?, ?)",
                         [("basic_finance", 0), ("econ_drives_finance", 1), ("full_integration", 3)])
        rows = [("basic_finance", "financial.credit", "all", "model", 400, 0.10),
                ("basic_finance", "financial.equities", "all", "model", 400, 0.02),
                ("basic_finance", "financial.fx", "all", "model", 50, 0.30),        # too few cells: not compared
                ("basic_finance", "financial.credit", "1", "model", 400, 0.50),     # one horizon: not the headline
                ("econ_drives_finance", "financial.credit", "all", "model", 400, 0.9),  # not a specialist
                ("full_integration", "financial.credit", "all", "model", 900, 0.15),
                ("full_integration", "financial.equities", "all", "model", 900, -0.01),
                ("full_integration", "financial.fx", "all", "model", 900, 0.0),
                ("full_integration", "financial.credit", "all", "ar", 900, 0.4)]    # a baseline: not the model
        conn.executemany("INSERT INTO forecast_scores (node, field_group, horizon, forecaster, n_cells, skill) "
                         "VALUES (?, ?, ?, ?, ?, ?)", rows)
        conn.execute(INTEGRATION_GAIN)
        got = conn.execute("SELECT tier0_node, shared_groups, median_gain, worst_gain, groups_improved, "
                           "field_groups FROM integration_gain").fetchall()
    assert len(got) == 1
    node, shared, median, worst, improved, groups = got[0]
    assert (node, shared, improved, groups) == ("basic_finance", 2, 1, ["financial.credit", "financial.equities"])
    assert median == pytest.approx((0.05 - 0.03) / 2) and worst == pytest.approx(-0.03)
