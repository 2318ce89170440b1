"""Forecasts as a product: the `forecasts` asset (real Dagster materializations on a three-node curriculum),
`gwm predict`, and `WorldModel.observe` reading every shape of observations people hold."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml

from gwm_assets.canvases.assets import canvas_assets
from gwm_assets.forecasts.assets import forecasts_asset
from gwm_assets.forecasts.table import COLUMNS
from gwm_assets.ops.cli import main
from gwm_assets.resources.training import TrainingResource
from gwm_assets.training.assets import training_assets
from gwm_model.curriculum import STANDARD_CURRICULUM
from gwm_model.inference import ForecastRequestError, ObservationsInputError, WorldModel
from tests.test_training_assets import BASE, TINY, tiny_project
from tests.test_warehouse import hold_write_lock

NODES = ("basic_finance", "basic_economics", "econ_drives_finance")
TEN_YEAR, UNRATE = "financial.yield_curves.ten_year", "country_us.macro.labor.unemployment_rate"
ORDER = "ORDER BY node, kind, field_path, as_of, horizon"
# the README's join of backtest forecasts with what was then observed
ACTUALS = """SELECT f.node, f.field_path, f.as_of, f.horizon, f.mean, f.naive, o.value AS actual
             FROM forecasts f ASOF JOIN observations o ON o.field_path = f.field_path AND o.ts < f.target_end
             WHERE f.kind = 'backtest' AND o.ts >= f.target_ts"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("forecasts")
    doc = yaml.safe_load(STANDARD_CURRICULUM.read_text())
    doc["nodes"] = [n for n in doc["nodes"] if n["name"] in NODES]
    longer = {**TINY, "train": {**TINY["train"], "steps": 6, "seed": 3}}
    doc["profiles"], doc["default_profile"] = {"tiny": TINY, "longer": longer}, "tiny"
    curriculum, _, resources = tiny_project(root, doc)
    warehouse = root / "w.duckdb"
    assets = [*BASE, *canvas_assets(curriculum), *training_assets(curriculum), forecasts_asset(curriculum)]

    def run(selection, **overrides):
        with dg.DagsterInstance.from_config(str(root)) as instance:
            return dg.materialize(assets, resources={**resources, **overrides}, instance=instance,
                                  selection=selection, raise_on_error=False)

    selection = ["fields", "source_series", "raw_tabular", "observations", *(f"canvas/{n}" for n in NODES),
                 "train/trunk", *(f"train/{n}" for n in NODES), "forecasts"]
    first = run(selection)
    assert first.success, [e.event_specific_data for e in first.all_events if e.is_failure]
    return {"root": root, "warehouse": warehouse, "run": run, "first": first, "curriculum": curriculum,
            "checkpoints": root / "checkpoints"}


def rows(project, sql: str, params=()) -> list[tuple]:
    with duckdb.connect(str(project["warehouse"]), read_only=True) as conn:
        return conn.execute(sql, list(params)).fetchall()


def forecast_metadata(result) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.path == ["forecasts"]]
    return event.materialization.metadata


# the asset -----------------------------------------------------------------------------------------

def test_every_trained_node_has_live_and_backtest_rows_with_the_naive_forecast_beside(project):
    by_kind = {(n, k): (c, h) for n, k, c, h in rows(
        project, "SELECT node, kind, count(*), list(DISTINCT horizon ORDER BY horizon) FROM forecasts GROUP BY ALL")}
    assert {n for n, _ in by_kind} == set(NODES)
    for node in NODES:
        assert by_kind[(node, "live")][1] == [1, 2] and by_kind[(node, "backtest")][0] > by_kind[(node, "live")][0]
    # live: from the newest publication among the node's fields, every output field with data
    (newest,) = rows(project, "SELECT max(available_at) FROM observations WHERE field_path IN (?, ?)",
                     [UNRATE, "country_us.macro.output.gdp_official.value"])[0]
    live = rows(project, "SELECT DISTINCT as_of FROM forecasts WHERE node = 'basic_economics' AND kind = 'live'")
    assert live == [(newest,)]
    assert {r[0] for r in rows(project, "SELECT field_path FROM forecasts WHERE node = 'basic_finance'")} == {
        TEN_YEAR, "financial.equities.indices.sp500"}
    # backtest: origins after the training period only; the sha and the data version say what produced them
    (train_end,) = rows(project, "SELECT train_end FROM canvases WHERE node = 'basic_finance'")[0]
    (first_origin,) = rows(project, "SELECT min(as_of) FROM forecasts WHERE node = 'basic_finance' "
                                    "AND kind = 'backtest'")[0]
    assert first_origin.date() > train_end
    shas = dict(rows(project, "SELECT node, weights_sha256 FROM checkpoints"))
    assert dict(rows(project, "SELECT DISTINCT node, checkpoint_sha FROM forecasts")) == {n: shas[n] for n in NODES}
    assert all(m in ("persistence", "climatology") for (m,) in rows(project, "SELECT naive_method FROM forecasts"))
    assert not rows(project, "SELECT * FROM forecasts WHERE mean IS NULL OR naive IS NULL OR NOT isfinite(mean) "
                             "OR target_end <= target_ts OR last_observed > as_of::DATE")
    meta = forecast_metadata(project["first"])
    (total,) = rows(project, "SELECT count(*) FROM forecasts")[0]
    assert meta["nodes_forecast"].value == 3 and meta["rows"].value == total
    for node in NODES:
        assert meta[f"plot_{node}"].value.startswith(f"![{node} forecasts](data:image/png;base64,")


def test_backtest_rows_join_what_was_observed_and_persistence_is_the_last_published_value(project):
    joined = rows(project, ACTUALS + " AND f.node = 'basic_finance'")
    (backtest,) = rows(project, "SELECT count(*) FROM forecasts WHERE node = 'basic_finance' AND kind = 'backtest'")[0]
    assert 0.9 * backtest <= len(joined) <= backtest  # weekly data: nearly every target step has its actual
    # the persistence naive of a backtest row is the newest observation published by its origin
    for field_path, as_of, naive in rows(project, """SELECT field_path, as_of, naive FROM forecasts
            WHERE node = 'basic_finance' AND kind = 'backtest' AND horizon = 1 AND naive_method = 'persistence'
            ORDER BY as_of LIMIT 20"""):
        (expected,) = rows(project, "SELECT value FROM observations WHERE field_path = ? AND available_at <= ? "
                                    "ORDER BY ts DESC LIMIT 1", [field_path, as_of])[0]
        assert naive == pytest.approx(expected, rel=1e-6)


def test_a_rerun_on_the_same_checkpoint_and_data_writes_the_same_rows(project):
    before = rows(project, f"SELECT * FROM forecasts {ORDER}")
    history = rows(project, "SELECT count(*) FROM forecast_history")
    again = project["run"](["forecasts"])
    assert again.success
    assert rows(project, f"SELECT * FROM forecasts {ORDER}") == before  # created_at included
    assert rows(project, "SELECT count(*) FROM forecast_history") == history
    assert "kept" in forecast_metadata(again)["nodes"].value


def test_a_newer_checkpoint_replaces_its_nodes_rows_and_the_old_stay_in_history(project):
    old_sha = rows(project, "SELECT weights_sha256 FROM checkpoints WHERE node = 'basic_finance'")[0][0]
    old_rows = rows(project, f"SELECT * FROM forecasts WHERE node = 'basic_finance' {ORDER}")
    others = rows(project, f"SELECT * FROM forecasts WHERE node <> 'basic_finance' {ORDER}")
    longer = TrainingResource(checkpoints_path=str(project["checkpoints"]), profile="longer", torch_threads=0)
    result = project["run"](["train/basic_finance", "forecasts"], training=longer)
    assert result.success
    new_sha = rows(project, "SELECT weights_sha256 FROM checkpoints WHERE node = 'basic_finance'")[0][0]
    assert new_sha != old_sha
    assert rows(project, "SELECT DISTINCT checkpoint_sha FROM forecasts WHERE node = 'basic_finance'") == [(new_sha,)]
    assert rows(project, f"SELECT * FROM forecasts WHERE node <> 'basic_finance' {ORDER}") == others
    kept = rows(project, f"SELECT {', '.join(COLUMNS)} FROM forecast_history WHERE checkpoint_sha = ? {ORDER}",
                [old_sha])
    assert kept == old_rows


def test_a_checkpoint_of_another_schema_fails_and_writes_nothing(project, tmp_path):
    copy = tmp_path / "checkpoints"
    shutil.copytree(project["checkpoints"], copy)
    manifest_path = copy / "basic_economics" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["canvas"]["schema_hash"] = "0123456789abcdef"
    manifest_path.write_text(json.dumps(manifest))
    before = rows(project, f"SELECT * FROM forecasts {ORDER}")
    other = TrainingResource(checkpoints_path=str(copy), profile="", torch_threads=0)
    result = project["run"](["forecasts"], training=other)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    error = failure.event_specific_data.error
    message = error.message + (error.cause.message if error.cause else "")
    assert "basic_economics" in message and "0123456789abcdef" in message and "re-materialize" in message
    assert rows(project, f"SELECT * FROM forecasts {ORDER}") == before


# gwm predict ---------------------------------------------------------------------------------------

def predict(project, capsys, *args: str) -> tuple[int, str, str]:
    code = main(["predict", *args, "--warehouse", str(project["warehouse"]),
                 "--curriculum", str(project["root"] / "curriculum.yaml")])
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_prints_the_forecast_of_the_most_integrated_node_and_draws_it(project, capsys, tmp_path):
    code, out, err = predict(project, capsys, TEN_YEAR, UNRATE, "--plot", str(tmp_path / "p.png"))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("node econ_drives_finance, as of ")  # the join forecasts both fields
    assert lines[1].split()[:5] == ["field_path", "target_ts", "horizon", "mean", "q05"]
    body = [line.split() for line in lines[3:] if line.startswith(("financial.", "country_us."))]
    assert {r[0] for r in body} == {TEN_YEAR, UNRATE} and sorted({int(r[2]) for r in body}) == [1, 2]
    assert all(float(r[4]) <= float(r[3]) <= float(r[5]) for r in body)
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # an earlier as-of and a shorter horizon, on a named node
    code, out, err = predict(project, capsys, TEN_YEAR, "--node", "basic_finance", "--as-of", "2019-06-30",
                             "--horizon", "1")
    assert code == 0, err
    assert out.splitlines()[0].startswith("node basic_finance, as of 2019-06-30")
    assert [line.split()[1] for line in out.splitlines()[3:]] == ["2019-07-01"]


@pytest.mark.parametrize("args, expected", [
    (["financial.yield_curves.ten_yr"], "Closest valid fields: financial.yield_curves.ten_year"),
    ([TEN_YEAR, "--node", "basic_finanse"], "Closest nodes: basic_finance"),
    ([UNRATE, "--node", "basic_finance"], f"does not forecast ['{UNRATE}']. Nodes that forecast each: {UNRATE}: "
                                         "basic_economics, econ_drives_finance"),
    ([TEN_YEAR, "--as-of", "1950-01-01"], "as_of 1950-01-01 is outside this model's data"),
    ([TEN_YEAR, "--as-of", "2031-01-01"], "as_of 2031-01-01 is outside this model's data"),
    ([TEN_YEAR, "--horizon", "9"], "forecasts up to 2 steps ahead; asked for 9"),
    (["regime.growth_regime"], "no trained node forecasts all of ['regime.growth_regime']"),
])
def test_predict_refuses_what_it_cannot_answer_with_the_valid_choices(project, capsys, args, expected):
    code, out, err = predict(project, capsys, *args)
    assert code == 2 and out == "" and expected in err, err


# observe: the frames people hold --------------------------------------------------------------------

def test_observe_reads_every_shape_of_observations_and_predicts_the_same(project):
    path = project["warehouse"]
    conn = duckdb.connect(str(path), read_only=True)
    query = "SELECT * FROM observations"
    reference = WorldModel.load(project["checkpoints"] / "basic_finance").observe(
        conn.sql(query).to_arrow_table(), as_of="2019-06-30").predict(horizon=2)
    shapes = {"RecordBatchReader": lambda: conn.execute(query).arrow(),
              "pandas": lambda: conn.sql(query).df(), "polars": lambda: conn.sql(query).pl(),
              "relation": lambda: conn.sql(query), "result": lambda: conn.execute(query),
              "path": lambda: str(path), "batch": lambda: conn.sql(query).to_arrow_table().to_batches()[0]}
    for name, make in shapes.items():
        frame = WorldModel.load(project["checkpoints"] / "basic_finance").observe(make(), as_of="2019-06-30") \
            .predict(horizon=2)
        pd.testing.assert_frame_equal(frame, reference, obj=name)
    conn.close()


def test_observe_names_a_missing_column_an_unreadable_shape_and_a_missing_file(project, tmp_path):
    model = WorldModel.load(project["checkpoints"] / "basic_finance")
    table = pa.table({"field_path": [TEN_YEAR], "ts": pa.array([dt.date(2019, 1, 7)]), "value": [2.5]})
    with pytest.raises(ObservationsInputError, match=r"lack column\(s\) \['available_at', 'source'\].*Fix: select"):
        model.observe(table)
    with pytest.raises(ObservationsInputError, match="cannot be read; pass a pyarrow Table or RecordBatchReader"):
        model.observe([{"field_path": TEN_YEAR}])
    with pytest.raises(ObservationsInputError, match="no warehouse file at"):
        model.observe(tmp_path / "missing.duckdb")
    duckdb.connect(str(tmp_path / "empty.duckdb")).close()
    with pytest.raises(ObservationsInputError, match=r"has no observations table. Fix: materialize"):
        model.observe(tmp_path / "empty.duckdb")
    holder = hold_write_lock(project["warehouse"], 1.5)  # a materialization writing
    try:
        with pytest.raises(ObservationsInputError, match="a running materialization may hold it"):
            model.observe(project["warehouse"])
    finally:
        holder.wait(timeout=30)


def test_a_backtest_forecast_is_what_the_model_said_with_only_the_data_published_by_then(project):
    """No look-ahead: forecasting from a past origin on all the data equals forecasting on the data cut there."""
    with duckdb.connect(str(project["warehouse"]), read_only=True) as conn:
        everything = conn.sql("SELECT * FROM observations").to_arrow_table()
    model = WorldModel.load(project["checkpoints"] / "econ_drives_finance").observe(everything)
    origins = model.test_origins(limit=3)
    assert origins.size == 3
    for origin in origins:
        rolled = model.forecast(origins=[origin])
        published = pa.compute.less_equal(everything["available_at"], pa.scalar(origin.astype(object),
                                                                               pa.timestamp("us")))
        cut = WorldModel.load(project["checkpoints"] / "econ_drives_finance").observe(
            everything.filter(published), as_of=origin).forecast()
        pd.testing.assert_frame_equal(rolled, cut, check_exact=False, rtol=1e-5)
    with pytest.raises(ForecastRequestError, match="after the observed as_of"):
        model.forecast(origins=[model.as_of + np.timedelta64(1, "D")])


def test_the_checkpoints_gate_blends_its_forecast_with_the_naive_one(project, tmp_path):
    copy = tmp_path / "basic_finance"
    shutil.copytree(project["checkpoints"] / "basic_finance", copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    assert set(manifest["evaluation"]["gate"]) == {TEN_YEAR, "financial.equities.indices.sp500"}
    assert all(0.0 <= w <= 1.0 for w in manifest["evaluation"]["gate"].values())
    with duckdb.connect(str(project["warehouse"]), read_only=True) as conn:
        everything = conn.sql("SELECT * FROM observations").to_arrow_table()

    assert set(manifest["evaluation"]["gate_base"]) == set(manifest["evaluation"]["gate"])
    assert manifest["base_forecast"]["kind"] == "ar"

    def forecast(base: float | None, correction: float | None = None) -> pd.DataFrame:
        doc = json.loads(json.dumps(manifest))
        if base is None:
            doc["evaluation"].pop("gate")
        else:
            doc["evaluation"]["gate_base"] = {p: base for p in doc["evaluation"]["gate"]}
            weight = base if correction is None else correction
            doc["evaluation"]["gate"] = {p: weight for p in doc["evaluation"]["gate"]}
        (copy / "manifest.json").write_text(json.dumps(doc))
        return WorldModel.load(copy).observe(everything).forecast(origins=[np.datetime64("2019-06-30T23:59:59")])

    raw, closed, half = forecast(None), forecast(0.0), forecast(0.5)
    np.testing.assert_allclose(closed["mean"], closed["naive"])  # a closed gate: the naive forecast
    np.testing.assert_allclose(half["mean"], 0.5 * (raw["mean"] + raw["naive"]))
    # two weights: the model's AR base over naive, then the network's correction over the base
    base_only, mixed = forecast(1.0, 0.0), forecast(0.3, 0.7)
    assert np.abs(base_only["mean"] - raw["naive"]).max() > 1e-6
    assert np.abs(base_only["mean"] - raw["mean"]).max() > 1e-6
    np.testing.assert_allclose(mixed["mean"], raw["naive"] + 0.3 * (base_only["mean"] - raw["naive"])
                               + 0.7 * (raw["mean"] - base_only["mean"]), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(half["q95"] - half["q05"], raw["q95"] - raw["q05"])  # the residual spread stays


def test_the_nowcasts_of_late_releases_are_gated_with_their_own_weights(project, tmp_path):
    """Cells before the origin's step not yet published by it (a month's unemployment rate, released weeks later)
    are served as ``naive + d * (ar - naive) + c * (network - ar)``, ``ar`` the AR nowcast from what was published,
    with the evaluation's ``gate_context_base`` (``d``) and ``gate_context`` (``c``); a checkpoint evaluated before
    the late releases had a base takes ``c`` over naive, and one evaluated before they were gated keeps the
    network's nowcast."""
    copy = tmp_path / "econ_drives_finance"
    shutil.copytree(project["checkpoints"] / "econ_drives_finance", copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    late, late_base = manifest["evaluation"]["gate_context"], manifest["evaluation"]["gate_context_base"]
    assert set(late) == set(late_base) == set(manifest["evaluation"]["gate"])
    assert all(0.0 <= w <= 1.0 for w in [*late.values(), *late_base.values()])
    with duckdb.connect(str(project["warehouse"]), read_only=True) as conn:
        everything = conn.sql("SELECT * FROM observations").to_arrow_table()
    origin = np.datetime64("2019-06-30T23:59:59")

    def windows(network: float | None, ar: float | None = None):
        doc = json.loads(json.dumps(manifest))
        for key, weight in (("gate_context", network), ("gate_context_base", ar)):
            if weight is None:
                doc["evaluation"].pop(key)
            else:
                doc["evaluation"][key] = {p: weight for p in late}
        (copy / "manifest.json").write_text(json.dumps(doc))
        model = WorldModel.load(copy).observe(everything)
        return model.windows(np.array([origin]), [UNRATE, TEN_YEAR]), model

    raw, model = windows(None)
    context = model.context
    closed, half = windows(0.0)[0], windows(0.5)[0]
    nowcast = ~raw.visible[:, :context - 1, 0]  # the unemployment rates of past weeks not yet released
    assert nowcast.sum() >= 2
    row = lambda out: out.mean[:, :context - 1, 0][nowcast]  # noqa: E731
    naive = (raw.naive[:, None, 0] * np.ones(nowcast.shape))[nowcast]
    assert np.abs(row(raw) - naive).max() > 1e-6
    np.testing.assert_allclose(row(closed), naive)
    np.testing.assert_allclose(row(half), 0.5 * (row(raw) + naive))
    np.testing.assert_allclose(closed.mean[:, context - 1:], half.mean[:, context - 1:])  # from the anchor on
    # with the AR nowcast as the base: d = 1, c = 0 serves it; d = 0.5, c = 0.5 blends all three
    offsets = np.arange(-(context - 1), model.horizon + 1)
    fields, table = model.base.forecast_compact(model.canvas, raw.anchors, np.array([origin]).astype("datetime64[us]")
                                                .astype(np.int64), offsets, late=True)
    f = model.layout.paths.index(UNRATE)
    ar = (table[:, :context - 1, list(fields).index(f)].astype(np.float64) * model.stats.std[UNRATE]
          + model.stats.mean[UNRATE])[nowcast]
    assert np.isfinite(ar).all() and np.abs(ar - naive).max() > 1e-6
    np.testing.assert_allclose(row(windows(0.0, 1.0)[0]), ar, rtol=1e-5)
    np.testing.assert_allclose(row(windows(0.5, 0.5)[0]), naive + 0.5 * (ar - naive) + 0.5 * (row(raw) - ar),
                               rtol=1e-5)

