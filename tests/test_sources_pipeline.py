"""Sources and observations through real Dagster materializations (temp DAGSTER_HOME and warehouse).

Only the network is faked: FRED's urllib calls and Yahoo's HTTP through an injected requests.Session.
"""

from __future__ import annotations

from datetime import date

import dagster as dg
import duckdb
import pytest
import responses
import yfinance as yf

from gwm_assets.definitions import DATA_ASSETS as ASSETS
from gwm_assets.resources.sources import SourceSettings
from gwm_assets.resources.warehouse import WarehouseResource
from gwm_assets.resources.world import WorldSchemaResource
from tests.sources.fakes import FakeFred, chart_json, register_yahoo


def run(home, warehouse, selection=None, raise_on_error=True, tabular_dir=None, **settings):
    resources = {"warehouse": WarehouseResource(path=str(warehouse)), "world": WorldSchemaResource(schema_path=""),
                 "settings": SourceSettings(**{"live": False, "fred_api_key": "", "plain_requests": True,
                                               "tabular_dir": str(tabular_dir or home / "no_tabular"), **settings})}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return dg.materialize(ASSETS, resources=resources, instance=instance, selection=selection,
                              raise_on_error=raise_on_error)


def sql(warehouse, query, params=None):
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute(query, params or []).fetchall()


@pytest.fixture(scope="module")
def offline_warehouse(tmp_path_factory):
    """The embedded default, materialized once for the module (as `make run` does)."""
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text("concurrency:\n  pools:\n    default_limit: 1\ntelemetry:\n  enabled: false\n")
    warehouse = home / "w.duckdb"
    assert run(home, warehouse).success
    return home, warehouse


def test_embedded_default_gives_real_history_with_provenance(offline_warehouse):
    _, warehouse = offline_warehouse
    rows, fields = sql(warehouse, "SELECT count(*), count(DISTINCT field_path) FROM observations")[0]
    assert rows >= 100_000 and fields >= 30
    layers = {r[0] for r in sql(warehouse, "SELECT DISTINCT split_part(field_path, '.', 1) FROM observations")}
    assert {"financial", "country_us", "resources", "firm_AAPL", "firm_MSFT"} <= layers
    orphans = sql(warehouse, "SELECT count(*) FROM observations o LEFT JOIN provenance p "
                             "ON p.provenance_id = o.provenance WHERE p.provenance_id IS NULL")[0][0]
    assert orphans == 0
    assert sql(warehouse, "SELECT count(*) FROM provenance WHERE synthetic")[0][0] == 0
    # every catalog field exists in `fields`
    assert sql(warehouse, "SELECT count(*) FROM source_series WHERE field NOT IN (SELECT path FROM fields)")[0][0] == 0
    # live sources said why they did not run
    skipped = dict(sql(warehouse, "SELECT source, message FROM refresh_log WHERE status = 'skipped'"))
    assert "FRED_API_KEY is not set" in skipped["fred"] and "GWM_LIVE=1" in skipped["yahoo"]
    # point in time: monthly CPI becomes known weeks after the month it describes
    lag = sql(warehouse, "SELECT min(available_at - ts) FROM observations "
                         "WHERE field_path = 'country_us.macro.inflation.core_cpi'")[0][0]
    assert lag.days >= 40


def test_embedded_default_is_wide_enough_for_every_specialist(offline_warehouse, world):
    """Issue 16's targets: >= 150 leaf fields with data in >= 12 layers, >= 5 fields per tier-0 node, real
    recent history, and the text corpus in the narrative and political specialists' fields."""
    from gwm_assets.resources.paths import curriculum_path
    from gwm_model.curriculum import load_curriculum

    _, warehouse = offline_warehouse
    with_data = {r[0] for r in sql(warehouse, "SELECT DISTINCT field_path FROM observations")}
    assert len(with_data) >= 150
    assert len({p.split(".")[0] for p in with_data}) >= 12
    curriculum = load_curriculum(curriculum_path(), schema=world)
    for name, node in curriculum.nodes.items():
        if node.tier == 0:
            assert len(with_data & set(node.projection(world).paths)) >= 5, name
    macro = [p for p in with_data if p.startswith("country_us.macro.")]
    assert len(macro) >= 20 and any(p.startswith("country_cn.") for p in with_data)
    recent = sql(warehouse, "SELECT count(*) FROM (SELECT field_path FROM observations GROUP BY 1 "
                            "HAVING max(ts) >= DATE '2019-01-01')")[0][0]
    assert recent >= 40
    assert "events.social_signal" in with_data and "regime.growth_regime" in with_data
    held = dict(sql(warehouse, "SELECT reason LIKE '%duplicate text%', count(*) FROM quarantine "
                               "WHERE source = 'news' GROUP BY 1"))
    assert held.get(True, 0) >= 1  # a re-posted text is held with its reason, not silently dropped


def test_second_materialization_changes_nothing(offline_warehouse):
    home, warehouse = offline_warehouse
    before = sql(warehouse, "SELECT count(*), max(ingested_at) FROM observations")[0]
    raw_before = sql(warehouse, "SELECT count(*), max(updated_at) FROM raw_fred")[0]
    result = run(home, warehouse)
    assert result.success
    assert sql(warehouse, "SELECT count(*), max(ingested_at) FROM observations")[0] == before
    assert sql(warehouse, "SELECT count(*), max(updated_at) FROM raw_fred")[0] == raw_before
    last = sql(warehouse, """SELECT sum(rows_inserted), sum(rows_updated) FROM refresh_log
                             WHERE run_id = ? AND source = 'bundled'""", [result.run_id])[0]
    assert last == (0, 0)
    meta = result.asset_materializations_for_node("observations")[0].metadata
    assert meta["rows_inserted"].value == 0 and meta["rows_updated"].value == 0


def test_fred_refresh_fetches_only_what_is_new_and_keeps_revisions(tmp_path, monkeypatch):
    home, warehouse = tmp_path, tmp_path / "w.duckdb"
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    history = [("2024-01-01", "2024-02-02", "3.7"), ("2024-02-01", "2024-03-08", "3.9")]
    fake = FakeFred({"UNRATE": list(history)}).install(monkeypatch)
    selection = ["fields", "source_series", "raw_fred", "observations"]
    settings = {"fred_api_key": "test", "fred_revision_days": 0}
    monkeypatch.setattr("gwm_assets.sources.assets._catalog_keys", lambda world, source: ["UNRATE"])
    assert run(home, warehouse, selection, **settings).success
    assert sql(warehouse, "SELECT count(*) FROM raw_fred")[0][0] == 2

    fake.series["UNRATE"].append(("2024-03-01", "2024-04-05", "3.8"))  # one new month
    result = run(home, warehouse, selection, **settings)
    assert "observation_start=2024-02-02" in fake.urls[-1]  # only after the watermark
    entry = sql(warehouse, "SELECT rows_fetched, rows_inserted, rows_updated FROM refresh_log "
                           "WHERE run_id = ? AND source = 'fred'", [result.run_id])[0]
    assert entry == (1, 1, 0)

    # a revision of February arrives: a new vintage row; observations keep the first release as `value`
    fake.series["UNRATE"].append(("2024-02-01", "2024-04-05", "4.0"))
    assert run(home, warehouse, selection, fred_api_key="test", fred_revision_days=40).success
    feb = sql(warehouse, "SELECT value, revised_value, available_at FROM observations "
                         "WHERE field_path = 'country_us.macro.labor.unemployment_rate' AND ts = '2024-02-01'")
    assert feb == [(3.9, 4.0, __import__("datetime").datetime(2024, 3, 8))]
    assert sql(warehouse, "SELECT count(*) FROM raw_fred WHERE date = '2024-02-01'")[0][0] == 2


def test_the_fred_refresh_paces_its_requests_unless_told_the_api_has_no_limit(tmp_path, monkeypatch):
    """The asset's client is paced at 110 requests a minute by default and unpaced with ``FRED_REQUESTS_PER_MINUTE=0``
    (a mirror or a local stand-in, as in the tutorial test); the pacing itself is tests/sources/test_fred.py's."""
    from gwm_assets.sources import fred

    home, warehouse = tmp_path, tmp_path / "w.duckdb"
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    FakeFred({k: [("2024-01-01", "2024-02-02", "3.7")] for k in ("UNRATE", "DGS10")}).install(monkeypatch)
    monkeypatch.setattr("gwm_assets.sources.assets._catalog_keys", lambda world, source: ["UNRATE", "DGS10"])
    clients = []

    class Recorded(fred.FredClient):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            clients.append(self)

    monkeypatch.setattr(fred, "FredClient", Recorded)
    assert run(home, warehouse, ["raw_fred"], fred_api_key="test").success
    monkeypatch.setenv("FRED_REQUESTS_PER_MINUTE", "0")
    assert run(home, warehouse, ["raw_fred"], fred_api_key="test").success
    assert [c.min_interval_s for c in clients] == [pytest.approx(60 / 110), 0.0]
    assert sql(warehouse, "SELECT count(DISTINCT series_id) FROM raw_fred")[0][0] == 2


def test_failed_fetch_keeps_stored_rows_and_names_the_series(tmp_path, monkeypatch):
    home, warehouse = tmp_path, tmp_path / "w.duckdb"
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    fake = FakeFred({"UNRATE": [("2024-01-01", "2024-02-02", "3.7")]}).install(monkeypatch)
    monkeypatch.setattr("gwm_assets.sources.assets._catalog_keys", lambda world, source: ["UNRATE", "BROKEN"])
    fake.fail["BROKEN"] = 400
    result = run(home, warehouse, ["raw_fred"], raise_on_error=False, fred_api_key="test")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "fred series BROKEN" in str(failure.event_specific_data.error)
    assert sql(warehouse, "SELECT series_id, value FROM raw_fred") == [("UNRATE", 3.7)]
    assert sql(warehouse, "SELECT status FROM refresh_log WHERE source = 'fred'") == [("partial",)]


def test_yahoo_live_refresh(tmp_path, monkeypatch):
    home, warehouse = tmp_path, tmp_path / "w.duckdb"
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setattr("gwm_assets.sources.assets._catalog_keys", lambda world, source: ["AAPL"])
    yf.data.SingletonMeta._instances.clear()
    days = [date(2024, 1, 2), date(2024, 1, 3)]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        register_yahoo(rsps, {"AAPL": chart_json("AAPL", days, [185.64, 184.25])})
        assert run(home, warehouse, ["fields", "source_series", "raw_yahoo", "observations"], live=True).success
    yf.data.SingletonMeta._instances.clear()
    rows = sql(warehouse, "SELECT ts, value FROM observations WHERE field_path = 'firm_AAPL.market.equity_price' "
                          "ORDER BY ts")
    assert [(d, round(v, 2)) for d, v in rows] == [(days[0], 185.64), (days[1], 184.25)]


def test_tabular_file_with_bad_rows(tmp_path):
    home, warehouse = tmp_path, tmp_path / "w.duckdb"
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    folder = tmp_path / "tabular"
    folder.mkdir()
    (folder / "rates.csv").write_text("day,ten_year\n2024-01-02,3.95\n2024-01-03,abc\n2024-01-03,3.91\n"
                                      "not-a-date,3.9\n2024-01-04,3.99\n2024-01-04,4.10\n")
    (folder / "rates.yaml").write_text("dataset: my_rates\npath: rates.csv\ndate_column: day\ncolumns:\n"
                                       "  ten_year: {field: financial.yield_curves.ten_year, frequency: daily}\n")
    assert run(home, warehouse, ["fields", "source_series", "raw_tabular", "observations"], tabular_dir=folder).success
    assert sql(warehouse, "SELECT date, value FROM raw_tabular ORDER BY date") == [
        (date(2024, 1, 2), 3.95), (date(2024, 1, 3), 3.91), (date(2024, 1, 4), 3.99)]
    reasons = [r[0] for r in sql(warehouse, "SELECT reason FROM quarantine ORDER BY reason")]
    assert any("row 3 column 'ten_year': non-numeric value 'abc'" in r for r in reasons)
    assert any("row 5: unparseable date 'not-a-date'" in r for r in reasons)
    assert any("row 7: duplicate date 2024-01-04" in r for r in reasons)
    assert sql(warehouse, "SELECT count(*) FROM observations WHERE source = 'tabular'")[0][0] == 3
