"""Coverage views, the heatmap attached to the `coverage` materialization, `gwm coverage`, and `coverage_plan`."""

from __future__ import annotations

import base64

import dagster as dg
import duckdb
import pytest

from gwm_assets.coverage.plan import FILLABLE, PlanRuleError, Rule, load_rules, plan_rows
from gwm_assets.definitions import DATA_ASSETS as ASSETS
from gwm_assets.ops import cli
from gwm_assets.resources.sources import SourceSettings
from gwm_assets.resources.warehouse import WarehouseResource
from gwm_assets.resources.world import WorldSchemaResource

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def covered(tmp_path_factory):
    home = tmp_path_factory.mktemp("coverage")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    folder = home / "tabular"
    folder.mkdir()
    days = [f"2024-01-{d:02d}" for d in range(2, 32)]
    (folder / "rates.csv").write_text("day,ten_year,two_year\n" + "".join(f"{d},4.{i % 10},4.5\n"
                                                                          for i, d in enumerate(days)))
    (folder / "rates.yaml").write_text(
        "dataset: rates\npath: rates.csv\ndate_column: day\ncolumns:\n"
        "  ten_year: {field: financial.yield_curves.ten_year, frequency: daily, release_lag_days: 1}\n"
        "  two_year: {field: financial.yield_curves.two_year, frequency: daily, release_lag_days: 1}\n")
    (folder / "cpi.csv").write_text("day,cpi\n" + "".join(f"2023-{m:02d}-01,{3 + m / 10}\n" for m in range(1, 13)))
    (folder / "cpi.yaml").write_text("dataset: cpi\npath: cpi.csv\ndate_column: day\ncolumns:\n"
                                     "  cpi: {field: country_us.macro.labor.unemployment_rate, frequency: monthly}\n")
    warehouse = home / "w.duckdb"
    resources = {"warehouse": WarehouseResource(path=str(warehouse)), "world": WorldSchemaResource(schema_path=""),
                 "settings": SourceSettings(live=False, fred_api_key="", plain_requests=True,
                                            tabular_dir=str(folder))}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dg.materialize(ASSETS, resources=resources, instance=instance,
                                selection=["fields", "source_series", "raw_tabular", "observations", "coverage",
                                           "coverage_plan"])
    assert result.success
    return warehouse, result


def rows(warehouse, query):
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute(query).fetchall()


def test_layer_coverage_lists_every_layer_with_honest_counts(covered, world):
    warehouse, _ = covered
    layers = {r[0]: r[1:] for r in rows(warehouse, "SELECT layer, fields_with_data, fields FROM layer_coverage")}
    assert set(layers) == {f.layer for f in world.leaves}
    leaves_per_layer = {}
    for f in world.leaves:
        leaves_per_layer[f.layer] = leaves_per_layer.get(f.layer, 0) + 1
    assert {k: v[1] for k, v in layers.items()} == leaves_per_layer
    assert layers["financial"][0] == 2 and layers["country_us"][0] == 1
    assert sum(v[0] for v in layers.values()) == 3


def test_field_coverage_per_field(covered):
    warehouse, _ = covered
    (sources, n, first, last, declared, observed, share, step), = rows(warehouse, """
        SELECT sources, n_obs, first_ts, last_ts, declared_period, observed_period_days, axis_share, axis_step
        FROM field_coverage WHERE field_path = 'country_us.macro.labor.unemployment_rate'""")
    assert sources == ["tabular"] and n == 12 and str(first) == "2023-01-01" and str(last) == "2023-12-01"
    assert 28 <= observed <= 31 and step == "month"
    assert share == pytest.approx(12 / 13)  # the axis runs Jan 2023 .. Jan 2024: 13 months, 12 covered
    empty = rows(warehouse, "SELECT n_obs, axis_share, is_stale FROM field_coverage "
                            "WHERE field_path = 'financial.yield_curves.thirty_year'")
    assert empty == [(0, 0.0, False)]
    stale = rows(warehouse, "SELECT is_stale FROM field_coverage WHERE field_path = 'financial.yield_curves.ten_year'")
    assert stale == [(True,)]  # January 2024 data is long past three daily periods + 60 days


def test_heatmap_is_attached_to_the_materialization(covered):
    warehouse, result = covered
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("coverage"))
    metadata = event.materialization.metadata
    markdown = metadata["heatmap"].value
    png = base64.b64decode(markdown.split("base64,", 1)[1].rstrip(")"))
    assert png.startswith(PNG_MAGIC) and len(png) > 5000
    assert metadata["leaf_fields_with_data"].value == 3 and metadata["layers"].value == 30


def test_gwm_coverage_prints_layers_and_fields(covered, capsys):
    warehouse, _ = covered
    assert cli.main(["coverage", "--warehouse", str(warehouse)]) == 0
    out = capsys.readouterr().out
    assert "country_us" in out and "biology" in out and "financial.yield_curves.ten_year" in out
    assert cli.main(["coverage", "financial.yield_curves", "--warehouse", str(warehouse)]) == 0
    out = capsys.readouterr().out
    assert "financial.yield_curves.two_year" in out and "2 with data" in out
    assert cli.main(["coverage", "nothing.here", "--warehouse", str(warehouse)]) == 2


def plan(warehouse, field):
    (row,) = rows(warehouse, "SELECT fillable, planned_sources, offline_sources, live_sources, live_needs, why, n_obs "
                             f"FROM coverage_plan WHERE field_path = '{field}'")
    return dict(zip(("fillable", "planned", "offline", "live", "needs", "why", "n_obs"), row, strict=True))


def test_coverage_plan_has_one_row_per_leaf_and_says_why(covered, world):
    warehouse, result = covered
    counts = dict(rows(warehouse, "SELECT fillable, count(*) FROM coverage_plan GROUP BY fillable"))
    assert set(counts) <= set(FILLABLE) and sum(counts.values()) == len(world.leaves)
    assert rows(warehouse, "SELECT count(*) FROM coverage_plan WHERE why IS NULL OR why = ''") == [(0,)]
    # your own file fills it offline; the catalog's FRED series would refresh it with a key
    ten = plan(warehouse, "financial.yield_curves.ten_year")
    assert ten["fillable"] == "offline" and ten["offline"] == ["tabular:rates:ten_year"]
    assert "fred:DGS10" in ten["live"] and ten["needs"] == ["FRED_API_KEY"] and ten["n_obs"] == 30
    # only live sources: FRED (key) and Yahoo (GWM_LIVE=1)
    krw = plan(warehouse, "financial.fx.usdkrw")
    assert krw["fillable"] == "live" and krw["live"] == ["fred:DEXKOUS", "yahoo:KRW=X"]
    assert krw["needs"] == ["FRED_API_KEY", "GWM_LIVE=1"] and krw["n_obs"] == 0
    # latent by design, with the reason
    mind = plan(warehouse, "person_fed_chair.cognitive.risk_appetite")
    assert mind["fillable"] == "unobservable" and "cognitive state" in mind["why"] and mind["planned"] == []
    assert plan(warehouse, "forecasts.macro.recession_prob_3m")["fillable"] == "unobservable"
    # mapped to an embedded-default item that this warehouse never loaded: not claimed as offline
    pc = plan(warehouse, "technology.household_computer_access")
    assert pc["fillable"] == "unplanned" and "no rows loaded" in pc["why"] and pc["planned"]
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("coverage_plan"))
    metadata = event.materialization.metadata
    assert sum(metadata[f"fields_{k}"].value for k in FILLABLE) == len(world.leaves)
    assert "| financial |" in metadata["per_layer"].value


def test_plan_rules_lose_to_data_and_bad_rules_are_named(world, tmp_path):
    spec = world.field("person_fed_chair.cognitive.risk_appetite")
    rules = [Rule(why="never published", paths=("person_*.cognitive.*",))]
    planned = [("tabular", "mine:risk", spec.path)]
    by_path = {r["field_path"]: r for r in plan_rows(world, planned, {("tabular", "mine:risk")},
                                                    {spec.path: (5, None)}, rules)}
    assert by_path[spec.path]["fillable"] == "offline"
    assert by_path["person_fed_chair.cognitive.time_horizon"]["fillable"] == "unobservable"
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - {why: everything}\n")
    with pytest.raises(PlanRuleError, match="rule 1: matches every field"):
        load_rules(bad)
    bad.write_text("rules:\n  - {why: x, unit: furlongs}\n")
    with pytest.raises(PlanRuleError, match="unknown unit 'furlongs'"):
        load_rules(bad, units=set(world.units))


def test_readme_plan_counts_match_the_catalog_and_rules(world):
    from pathlib import Path

    from gwm_assets.sources.catalog import load_catalog

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    (line,) = [r for r in readme.splitlines() if r.startswith("| **all ") and "leaf fields**" in r]
    cells = [c.strip().strip("*").replace(",", "") for c in line.strip("|").split("|")]
    assert int(cells[0].split()[1]) == len(world.leaves)
    planned = [(m.source, m.key, m.field) for m in load_catalog(world)]
    # what does not depend on which embedded items loaded: the unobservable fields, and the fields that only a
    # live source could fill once every embedded item has rows
    shipped = {(s, k) for s, k, _ in planned if s == "tabular" or k.startswith("corpus:")}
    rows = plan_rows(world, planned, shipped, {}, load_rules(units=set(world.units)))
    counts = {k: sum(r["fillable"] == k for r in rows) for k in FILLABLE}
    assert counts["unobservable"] == int(cells[4])
    assert counts["offline"] + counts["live"] + counts["unplanned"] + counts["unobservable"] == len(world.leaves)
