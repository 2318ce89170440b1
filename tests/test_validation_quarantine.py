"""Bad input through real Dagster materializations: quarantined with reasons, good rows flow on, checks say why.

Input comes through the tabular source (real CSV files read by DuckDB), so no network is involved.
"""

from __future__ import annotations

from datetime import date

import dagster as dg
import duckdb
import pytest

from gwm_assets.definitions import CHECKS
from gwm_assets.definitions import DATA_ASSETS as ASSETS
from gwm_assets.observations.assets import observations
from gwm_assets.resources.sources import SourceSettings
from gwm_assets.resources.warehouse import WarehouseResource
from gwm_assets.resources.world import WorldSchemaResource

SELECTION = ["fields", "source_series", "raw_tabular", "observations", "canvas_probe"]
FUTURE = "2099-01-04"


@dg.asset(deps=[observations], group_name="canvases")
def canvas_probe() -> None:
    """Stands in for a canvas: anything downstream of observations."""


def run(home, warehouse, folder, selection=SELECTION, checks=True):
    resources = {"warehouse": WarehouseResource(path=str(warehouse)), "world": WorldSchemaResource(schema_path=""),
                 "settings": SourceSettings(live=False, fred_api_key="", plain_requests=True, tabular_dir=str(folder))}
    assets = [*ASSETS, canvas_probe, *(CHECKS if checks else [])]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return dg.materialize(assets, resources=resources, instance=instance, selection=selection,
                              raise_on_error=False)


def sql(warehouse, query):
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute(query).fetchall()


def write_inputs(folder, rates: str, unrate: str, retail: str, oil: str) -> None:
    folder.mkdir(exist_ok=True)
    files = {"rates": ("ten_year", "financial.yield_curves.ten_year", "level", "daily", rates),
             "unrate": ("unrate", "country_us.macro.labor.unemployment_rate", "level", "monthly", unrate),
             "retail": ("retail", "country_us.macro.output.retail_sales", "pct_change", "monthly", retail),
             "oil": ("oil", "resources.energy.crude_price", "log_return", "daily", oil)}
    for name, (column, field, transform, frequency, body) in files.items():
        (folder / f"{name}.csv").write_text(f"day,{column}\n{body}")
        (folder / f"{name}.yaml").write_text(
            f"dataset: {name}\npath: {name}.csv\ndate_column: day\ncolumns:\n"
            f"  {column}: {{field: {field}, transform: {transform}, frequency: {frequency}, release_lag_days: 1}}\n")


GOOD_RATES = "2024-01-02,3.95\n2024-01-03,3.91\n2024-01-04,3.99\n2024-01-05,4.05\n"
BAD_RATES = GOOD_RATES + f"2024-01-08,250.0\n2024-01-09,abc\n2024-01-10,4.02\n2024-01-10,4.07\n{FUTURE},4.1\n"
FIXED_RATES = GOOD_RATES + "2024-01-08,4.00\n2024-01-09,4.01\n2024-01-10,4.02\n"
# monthly for six months, then daily in July: the daily rows are a frequency change
UNRATE = "".join(f"2023-{m:02d}-01,3.{m}\n" for m in range(1, 7)) + "2023-07-01,3.5\n2023-07-02,3.5\n2023-07-03,3.6\n"
RETAIL = "2023-01-01,0\n2023-02-01,5\n2023-03-01,6\n"  # pct_change from zero: infinite
OIL = "2024-01-02,70\n2024-01-03,-5\n2024-01-04,71\n"  # log return across a negative price: NaN


@pytest.fixture()
def bad_run(tmp_path):
    home, warehouse, folder = tmp_path, tmp_path / "w.duckdb", tmp_path / "tabular"
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    write_inputs(folder, BAD_RATES, UNRATE, RETAIL, OIL)
    return home, warehouse, folder, run(home, warehouse, folder)


def held(warehouse):
    return sql(warehouse, "SELECT check_name, source_key, ts, reason FROM quarantine WHERE released_at IS NULL "
                          "ORDER BY source_key, ts, check_name")


def test_each_failure_kind_is_quarantined_with_a_reason_and_good_rows_flow_on(bad_run):
    home, warehouse, folder, result = bad_run
    reasons = {(check, key, ts): reason for check, key, ts, reason in held(warehouse)}
    # parse level: text and a duplicate date (the first row of that date is kept)
    assert "non-numeric value 'abc'" in reasons[("tabular.parse", "rates:ten_year", "2024-01-09")]
    assert "duplicate date 2024-01-10" in reasons[("tabular.parse", "rates:ten_year", "2024-01-10")]
    # observations build: out of range, future, infinite, NaN, frequency change
    assert "250.0 is above the plausible maximum 100.0 (unit pct_per_year)" in reasons[
        ("observations.value_at_most_plausible_maximum", "rates:ten_year", "2024-01-08")]
    assert "in the future" in reasons[("observations.not_published_in_future", "rates:ten_year", "2099-01-04")]
    assert "(not finite)" in reasons[("observations.value_is_finite", "retail:retail", "2023-02-01")]
    assert "NaN" in reasons[("observations.value_is_a_number", "oil:oil", "2024-01-03")]
    assert "declared monthly: its frequency changed" in reasons[
        ("observations.spacing_matches_declared_frequency", "unrate:unrate", "2023-07-02")]
    assert len(reasons) == 9  # oil's next day is NaN too (its log return is across the negative price)
    # nothing valid dropped: every good row reached observations, no bad one did
    got = dict(((f, str(ts)), v) for f, ts, v in sql(warehouse, "SELECT field_path, ts, value FROM observations"))
    assert [got[("financial.yield_curves.ten_year", d)] for d in
            ("2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-10")] == [3.95, 3.91, 3.99, 4.05, 4.02]
    assert ("financial.yield_curves.ten_year", "2024-01-08") not in got
    assert ("financial.yield_curves.ten_year", FUTURE) not in got
    assert sum(1 for f, _ in got if f == "country_us.macro.labor.unemployment_rate") == 7  # Jan..Jul 1st
    assert got[("country_us.macro.output.retail_sales", "2023-03-01")] == pytest.approx(20.0)
    # raw data is kept as it came
    assert sql(warehouse, "SELECT value FROM raw_tabular WHERE dataset = 'rates' AND date = '2024-01-08'") == [(250.0,)]
    # the Dagster check names the series and the count
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    quarantine = evaluations["quarantine_empty"]
    assert not quarantine.passed and quarantine.severity == dg.AssetCheckSeverity.WARN
    text = quarantine.description
    assert "9 rows held" in text and "unrate:unrate" in text
    assert "financial.yield_curves.ten_year <- tabular:rates:ten_year" in quarantine.metadata["held"].value
    # the raw suite warns about the row dated in the future, naming the series; it does not block
    by_asset = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    future = by_asset[("raw_tabular", "not_dated_in_future")]
    assert not future.passed and future.severity == dg.AssetCheckSeverity.WARN
    assert "rates / ten_year (1)" in future.description
    # the published table passes its blocking suite, so downstream ran
    blocking = [e for (asset, name), e in by_asset.items() if asset == "observations" and name != "quarantine_empty"]
    assert len(blocking) == 12 and all(e.passed for e in blocking)
    assert result.is_node_success("canvas_probe")


def test_fixed_input_releases_once_and_reruns_add_nothing(bad_run):
    home, warehouse, folder, _ = bad_run
    before = sql(warehouse, "SELECT count(*) FROM quarantine")[0][0]
    assert run(home, warehouse, folder, checks=False).success  # the same bad input again
    assert sql(warehouse, "SELECT count(*) FROM quarantine")[0][0] == before  # nothing quarantined twice

    write_inputs(folder, FIXED_RATES, UNRATE, RETAIL, OIL)
    assert run(home, warehouse, folder, checks=False).success
    released = sql(warehouse, "SELECT check_name, ts FROM quarantine WHERE released_at IS NOT NULL ORDER BY ts")
    assert sorted(released) == sorted([("observations.value_at_most_plausible_maximum", "2024-01-08"),
                                       ("tabular.parse", "2024-01-09"), ("tabular.parse", "2024-01-10")])
    values = dict(sql(warehouse, "SELECT ts, value FROM observations WHERE field_path = "
                                 "'financial.yield_curves.ten_year'"))
    assert values[date(2024, 1, 8)] == 4.00 and values[date(2024, 1, 9)] == 4.01
    # the future row is no longer in the file, but raw data is never deleted: it stays held
    assert sql(warehouse, "SELECT count(*) FROM quarantine WHERE ts = '2099-01-04' AND released_at IS NULL")[0][0] == 1

    stamps = sql(warehouse, "SELECT released_at FROM quarantine WHERE released_at IS NOT NULL ORDER BY 1")
    assert run(home, warehouse, folder, checks=False).success
    assert sql(warehouse, "SELECT released_at FROM quarantine WHERE released_at IS NOT NULL ORDER BY 1") == stamps


def test_a_failing_blocking_check_stops_downstream(bad_run):
    home, warehouse, folder, _ = bad_run
    with duckdb.connect(str(warehouse)) as conn:  # something slipped past the build: the checks must catch it
        conn.execute("""INSERT INTO observations SELECT field_path, DATE '2024-01-11', available_at + INTERVAL 9 DAY,
                        1.0e9, 1.0e9, vector, source, source_key, provenance, ingested_at FROM observations
                        WHERE field_path = 'financial.yield_curves.ten_year' AND ts = DATE '2024-01-05'""")
    result = run(home, warehouse, folder, selection=["observations", "canvas_probe"])
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    failed = evaluations["value_at_most_plausible_maximum"]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert "1 of" in failed.description and "financial.yield_curves.ten_year / tabular / rates:ten_year (1)" in (
        failed.description)
    assert not result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "canvas_probe" not in materialized


def test_gx_counts_failing_rows_per_series_on_the_failing_rows_alone():
    from pathlib import Path

    import pandas as pd

    from gwm_assets.validation.gx_runner import validate
    from gwm_assets.validation.suite import load_suite

    suite = load_suite(Path(__file__).parents[1] / "gwm_assets" / "sources" / "expectations" / "raw_fred.yaml")
    frame = pd.DataFrame({"series_id": ["DGS10"] * 4 + ["UNRATE"] * 3, "date": pd.date_range("2024-01-01", periods=7),
                          "realtime_start": [None] * 7, "value": [4.0, 4.1, 2e300, 4.2, 3.9, -3e300, 5e300],
                          "days_ago": [30, 29, 28, -2, 26, 25, 24]})
    by_name = {o.expectation.name: o for o in validate(frame, suite)}
    finite = by_name["value_finite"]
    assert not finite.passed and finite.unexpected_count == 3 and finite.by_series == {"UNRATE": 2, "DGS10": 1}
    future = by_name["not_dated_in_future"]
    assert future.unexpected_count == 1 and future.by_series == {"DGS10": 1}
    assert by_name["series_id_present"].passed and by_name["series_id_present"].by_series == {}
