"""raw_pmi, raw_earnings and raw_news through real Dagster materializations (temp DAGSTER_HOME and warehouse).

Only the network is faked (``responses``); the assets run live (``SourceSettings.live``) against the real
catalog, raw stores, ledger and ``observations``. For each source: a first refresh (raw rows by natural key,
``refresh_log``, ``provenance``, observations whose ``available_at`` is the release / filing / publication
time), the same payload again (nothing written), one new period (one row), an HTTP 500 for one series
(partial, stored rows untouched, the error names source and series) and a malformed row (quarantined).
Each source's first refresh runs once per module; the later refreshes each start from a copy of it.
News embeds headlines with the packaged MiniLM model, loaded once for the module (the asset offers no
embedder seam, so the real model runs).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest
import responses

from gwm_assets.sources import news
from tests.conftest import REPO
from tests.sources.fakes import register_dbnomics, register_edgar, register_feeds, rss
from tests.sources.test_earnings import K10, K10A, Q1, Q3, fact
from tests.sources.test_pmi import doc
from tests.test_sources_pipeline import run, sql


def refresh(home, warehouse, asset: str, serve: Callable, raise_on_error: bool = True, catalog: bool = True):
    """One live materialization of ``asset`` and ``observations``; ``catalog`` also writes ``fields`` and
    ``source_series`` (a fresh warehouse needs them, a copy of a refreshed one has them)."""
    selection = (["fields", "source_series"] if catalog else []) + [asset, "observations"]
    with responses.RequestsMock() as rsps:  # every registered response must be requested
        serve(rsps)
        return run(home, warehouse, selection, raise_on_error=raise_on_error, live=True)


def refresh_copy(home, warehouse, asset: str, serve: Callable, raise_on_error: bool = True):
    """A later refresh of a copied warehouse (which holds ``fields`` and ``source_series`` already)."""
    return refresh(home, warehouse, asset, serve, raise_on_error=raise_on_error, catalog=False)


def first_refresh(tmp_path_factory, asset: str, serve: Callable) -> tuple:
    """A first refresh into a fresh warehouse, shared by a module: (warehouse, result). Tests that go on
    refreshing work on a copy (:func:`copy_of`)."""
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    warehouse = home / "w.duckdb"
    return warehouse, refresh(home, warehouse, asset, serve)


def copy_of(first: tuple, tmp_path: Path) -> Path:
    """A private copy of a module's first-refresh warehouse."""
    warehouse = tmp_path / "w.duckdb"
    shutil.copy(first[0], warehouse)
    wal = Path(f"{first[0]}.wal")
    if wal.exists():
        shutil.copy(wal, f"{warehouse}.wal")
    return warehouse


def log_entry(warehouse, result, source: str) -> tuple:
    """This run's refresh_log row: (status, fetched, inserted, updated, rejected, message)."""
    rows = sql(warehouse, "SELECT status, rows_fetched, rows_inserted, rows_updated, rows_rejected, message "
                          "FROM refresh_log WHERE run_id = ? AND source = ?", [result.run_id, source])
    assert len(rows) == 1, rows
    return rows[0]


def snapshot(warehouse, raw_table: str, source: str) -> tuple:
    """Row counts and change stamps of the raw table and the source's observations."""
    return (sql(warehouse, f"SELECT count(*), max(updated_at), max(ingested_at) FROM {raw_table}")[0],
            sql(warehouse, "SELECT count(*), max(ingested_at) FROM observations WHERE source = ?", [source])[0])


def observation_counts(result) -> tuple[int, int]:
    meta = result.asset_materializations_for_node("observations")[0].metadata
    return meta["rows_inserted"].value, meta["rows_updated"].value


def step_failure(result, step: str) -> str:
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE" and e.step_key == step)
    return str(failure.event_specific_data.error)


def parse_rejects(warehouse, source: str) -> list[tuple]:
    """Quarantined input rows of the source's parser: (source, source_key, ts, reason, raw, run_id)."""
    return sql(warehouse, "SELECT source, source_key, ts, reason, raw, run_id FROM quarantine WHERE check_name = ?",
               [f"{source}.parse"])


def assert_provenance(warehouse, source: str, raw_table: str, url_part: str | None) -> None:
    pid = f"live:{source}"
    ((prov_source, synthetic, url),) = sql(warehouse, "SELECT source, synthetic, url FROM provenance "
                                                      "WHERE provenance_id = ?", [pid])
    assert prov_source == source and synthetic is False
    assert (url_part is None and url is None) or url_part in url
    assert sql(warehouse, f"SELECT DISTINCT provenance FROM {raw_table}") == [(pid,)]
    assert sql(warehouse, "SELECT DISTINCT provenance FROM observations WHERE source = ?", [source]) == [(pid,)]


# --- PMI (DBnomics) ---------------------------------------------------------------------------------------------

PM, NM = "ISM/pmi/pm", "ISM/nm-pmi/pm"  # both in the catalog
PM_MONTHS = ["2023-09", "2023-10", "2023-11", "2023-12", "2024-01"]
PM_VALUES = [49.0, 46.7, 46.7, 47.4, 49.1]
NM_MONTHS, NM_VALUES = ["2023-12", "2024-01"], [50.6, 53.4]


def pmi_docs(pm_extra: tuple[list, list] = ([], []), nm: dict | int | None = None,
             pm_values: list[float] = PM_VALUES) -> Callable:
    pm_doc = doc(PM, PM_MONTHS + pm_extra[0], pm_values + pm_extra[1], name="ISM Manufacturing PMI")
    nm_doc = nm if nm is not None else doc(NM, NM_MONTHS, NM_VALUES, name="ISM Services PMI")
    return lambda rsps: register_dbnomics(rsps, {PM: pm_doc, NM: nm_doc})


def pmi_raw(warehouse) -> list[tuple]:
    return sql(warehouse, "SELECT series_code, period, value, released_at, updated_at FROM raw_pmi "
                          "ORDER BY series_code, period")


@pytest.fixture(scope="module")
def pmi_first(tmp_path_factory):
    return first_refresh(tmp_path_factory, "raw_pmi", pmi_docs())


def test_pmi_first_refresh_lands_raw_rows_ledger_and_point_in_time_observations(pmi_first):
    warehouse, result = pmi_first
    assert [r[:3] for r in pmi_raw(warehouse)] == [
        (NM, date(2023, 12, 1), 50.6), (NM, date(2024, 1, 1), 53.4),
        (PM, date(2023, 9, 1), 49.0), (PM, date(2023, 10, 1), 46.7), (PM, date(2023, 11, 1), 46.7),
        (PM, date(2023, 12, 1), 47.4), (PM, date(2024, 1, 1), 49.1)]
    assert log_entry(warehouse, result, "pmi") == ("ok", 7, 7, 0, 0, None)
    assert sql(warehouse, "SELECT watermark_before, watermark_after FROM refresh_log WHERE source = 'pmi'") == [
        (None, "2024-01-01")]
    assert result.asset_materializations_for_node("raw_pmi")[0].metadata["rows_inserted"].value == 7
    assert_provenance(warehouse, "pmi", "raw_pmi", "db.nomics.world")

    obs = sql(warehouse, "SELECT field_path, ts, value, available_at FROM observations WHERE source = 'pmi' "
                         "ORDER BY field_path, ts")
    manufacturing = [r for r in obs if r[0] == "country_us.macro.output.pmi_manufacturing"]
    services = [r for r in obs if r[0] == "country_us.macro.output.pmi_services"]
    assert len(obs) == 7 and len(manufacturing) == 5
    # available_at is ISM's release (first / third business day of the next month, 10:00 ET as UTC)
    assert manufacturing[-2:] == [
        ("country_us.macro.output.pmi_manufacturing", date(2023, 12, 1), 47.4, datetime(2024, 1, 3, 15)),
        ("country_us.macro.output.pmi_manufacturing", date(2024, 1, 1), 49.1, datetime(2024, 2, 1, 15))]
    assert manufacturing[0][3] == datetime(2023, 10, 2, 14)  # 1 Oct 2023 was a Sunday; EDT
    assert services == [
        ("country_us.macro.output.pmi_services", date(2023, 12, 1), 50.6, datetime(2024, 1, 5, 15)),
        ("country_us.macro.output.pmi_services", date(2024, 1, 1), 53.4, datetime(2024, 2, 5, 15))]
    # no look-ahead: every value equals the raw value and is available exactly at its stored release time
    assert sql(warehouse, """SELECT count(*) FROM observations o JOIN raw_pmi r
                             ON o.source_key = r.series_code AND o.ts = r.period
                             WHERE o.available_at = r.released_at AND o.value = r.value
                               AND o.available_at >= o.ts + INTERVAL 1 MONTH""")[0][0] == 7


def test_pmi_refresh_again_writes_nothing_then_one_new_month_only(pmi_first, dagster_home, tmp_path):
    warehouse = copy_of(pmi_first, tmp_path)
    before, raw_before = snapshot(warehouse, "raw_pmi", "pmi"), pmi_raw(warehouse)

    again = refresh_copy(dagster_home, warehouse, "raw_pmi", pmi_docs())
    # the 62-day revision window re-reads Nov..Jan of ISM/pmi/pm and both services months: 5, none changed
    assert log_entry(warehouse, again, "pmi") == ("ok", 5, 0, 0, 0, None)
    assert snapshot(warehouse, "raw_pmi", "pmi") == before and pmi_raw(warehouse) == raw_before
    assert observation_counts(again) == (0, 0)

    newer = refresh_copy(dagster_home, warehouse, "raw_pmi", pmi_docs((["2024-02"], [47.8])))
    assert log_entry(warehouse, newer, "pmi") == ("ok", 6, 1, 0, 0, None)
    after = pmi_raw(warehouse)
    assert [r for r in after if r not in raw_before] == [(PM, date(2024, 2, 1), 47.8, datetime(2024, 3, 1, 15),
                                                          after[-1][4])]
    assert len(after) == len(raw_before) + 1  # stored rows untouched, updated_at included
    assert observation_counts(newer) == (1, 0)
    assert sql(warehouse, "SELECT ts, value, available_at FROM observations WHERE source = 'pmi' "
                          "AND ingested_at > ?", [before[1][1]]) == [(date(2024, 2, 1), 47.8, datetime(2024, 3, 1, 15))]


def test_pmi_http_500_for_one_series_is_partial_and_keeps_its_stored_rows(pmi_first, dagster_home, tmp_path):
    warehouse = copy_of(pmi_first, tmp_path)
    services_before = [r for r in pmi_raw(warehouse) if r[0] == NM]

    result = refresh_copy(dagster_home, warehouse, "raw_pmi", pmi_docs((["2024-02"], [47.8]), nm=500),
                          raise_on_error=False)
    error = step_failure(result, "raw_pmi")
    assert "pmi refresh partial" in error and "pmi series ISM/nm-pmi/pm: HTTP 500" in error
    status, _, inserted, updated, _, message = log_entry(warehouse, result, "pmi")
    assert (status, inserted, updated) == ("partial", 1, 0)
    assert message.startswith("pmi series ISM/nm-pmi/pm: HTTP 500") and "internal error serving" in message
    assert [r for r in pmi_raw(warehouse) if r[0] == NM] == services_before
    assert (PM, date(2024, 2, 1), 47.8) in [r[:3] for r in pmi_raw(warehouse)]  # the other series still landed


def test_pmi_non_numeric_value_is_quarantined_not_stored(pmi_first, dagster_home, tmp_path):
    warehouse = copy_of(pmi_first, tmp_path)
    result = refresh_copy(dagster_home, warehouse, "raw_pmi", pmi_docs((["2024-02", "2024-03"], ["NA", 50.3])))
    assert log_entry(warehouse, result, "pmi") == ("ok", 6, 1, 0, 1, None)
    ((source, key, ts, reason, raw, run_id),) = parse_rejects(warehouse, "pmi")
    assert (source, key, ts, reason, run_id) == ("pmi", PM, "2024-02-01", "non-numeric value 'NA'", result.run_id)
    assert '"period": "2024-02"' in raw and '"value": "NA"' in raw
    assert sql(warehouse, "SELECT count(*) FROM raw_pmi WHERE period = '2024-02-01'")[0][0] == 0
    assert sql(warehouse, "SELECT value FROM observations WHERE source_key = ? AND ts >= '2024-02-01'", [PM]) == [
        (50.3,)]


def test_pmi_revision_keeps_the_first_release_as_value(pmi_first, dagster_home, tmp_path):
    warehouse = copy_of(pmi_first, tmp_path)
    result = refresh_copy(dagster_home, warehouse, "raw_pmi", pmi_docs(pm_values=PM_VALUES[:-1] + [49.5]))
    # the revision window saw it: stored as a new vintage row beside the first release, which is kept
    assert log_entry(warehouse, result, "pmi") == ("ok", 5, 1, 0, 0, None)
    assert sql(warehouse, "SELECT value FROM raw_pmi WHERE series_code = ? AND period = '2024-01-01' "
                          "ORDER BY ingested_at", [PM]) == [(49.1,), (49.5,)]
    # on 2024-02-01 15:00 only 49.1 was known; 49.5 is a later revision (README: value = first published)
    assert sql(warehouse, "SELECT value, revised_value, available_at FROM observations "
                          "WHERE source_key = ? AND ts = '2024-01-01'", [PM]) == [
        (49.1, 49.5, datetime(2024, 2, 1, 15))]


# --- Earnings (SEC EDGAR company facts) --------------------------------------------------------------------------

AAPL_CIK, MSFT_CIK = 320193, 789019
REVENUE_CONCEPT = "RevenueFromContractWithCustomerExcludingAssessedTax"
MSFT_Q1 = "0000950170-23-054855"


def company(revenue: Sequence[dict], cash: Sequence[dict] = (), shares: Sequence[dict] = ()) -> dict:
    facts = {"us-gaap": {REVENUE_CONCEPT: {"units": {"USD": list(revenue)}}}}
    if cash:
        facts["us-gaap"]["CashAndCashEquivalentsAtCarryingValue"] = {"units": {"USD": list(cash)}}
    if shares:
        facts["dei"] = {"EntityCommonStockSharesOutstanding": {"units": {"shares": list(shares)}}}
    return {"cik": 0, "entityName": "test", "facts": facts}


AAPL_REVENUE = [
    fact("2023-04-02", "2023-07-01", 81797000000, Q3, 2023, "Q3", "10-Q", "2023-08-04"),
    fact("2022-09-25", "2023-09-30", 383285000000, K10, 2023, "FY", "10-K", "2023-11-03"),  # full year: dropped
    fact("2023-07-02", "2023-09-30", 89498000000, K10, 2023, "FY", "10-K", "2023-11-03"),
]
AAPL_CASH = [fact(None, "2023-07-01", 28408000000, Q3, 2023, "Q3", "10-Q", "2023-08-04"),
             fact(None, "2023-09-30", 29965000000, K10, 2023, "FY", "10-K", "2023-11-03")]
AAPL_SHARES = [fact(None, "2023-10-20", 15550061000, K10, 2023, "FY", "10-K", "2023-11-03")]
MSFT_REVENUE = [fact("2023-07-01", "2023-09-30", 56517000000, MSFT_Q1, 2024, "Q1", "10-Q", "2023-10-24")]


def edgar(aapl_extra: Sequence[dict] = (), msft: dict | int | None = None) -> Callable:
    aapl = company(AAPL_REVENUE + list(aapl_extra), AAPL_CASH, AAPL_SHARES)
    return lambda rsps: register_edgar(rsps, {AAPL_CIK: aapl, MSFT_CIK: msft or company(MSFT_REVENUE)})


def earnings_raw(warehouse) -> list[tuple]:
    return sql(warehouse, "SELECT ticker, metric, period_end, accession, value, filed, updated_at FROM raw_earnings "
                          "ORDER BY ticker, metric, period_end, accession")


@pytest.fixture(scope="module")
def earnings_first(tmp_path_factory):
    return first_refresh(tmp_path_factory, "raw_earnings", edgar())


def test_earnings_first_refresh_lands_facts_ledger_and_filing_date_observations(earnings_first):
    warehouse, result = earnings_first
    assert [r[:6] for r in earnings_raw(warehouse)] == [
        ("AAPL", "cash", date(2023, 7, 1), Q3, 28408000000.0, date(2023, 8, 4)),
        ("AAPL", "cash", date(2023, 9, 30), K10, 29965000000.0, date(2023, 11, 3)),
        ("AAPL", "revenue", date(2023, 7, 1), Q3, 81797000000.0, date(2023, 8, 4)),
        ("AAPL", "revenue", date(2023, 9, 30), K10, 89498000000.0, date(2023, 11, 3)),
        ("AAPL", "shares_outstanding", date(2023, 10, 20), K10, 15550061000.0, date(2023, 11, 3)),
        ("MSFT", "revenue", date(2023, 9, 30), MSFT_Q1, 56517000000.0, date(2023, 10, 24))]
    assert log_entry(warehouse, result, "earnings") == ("ok", 6, 6, 0, 0, None)
    assert sql(warehouse, "SELECT watermark_after FROM refresh_log WHERE source = 'earnings'") == [("2023-11-03",)]
    assert_provenance(warehouse, "earnings", "raw_earnings", "data.sec.gov")

    obs = [(f, ts, round(v, 6), at) for f, ts, v, at in sql(
        warehouse, "SELECT field_path, ts, value, available_at FROM observations WHERE source = 'earnings' "
                   "ORDER BY field_path, ts")]
    # catalog scales: USD -> billions, shares -> millions; available from the filing date, never the period end
    assert obs == [
        ("firm_AAPL.financials.cash", date(2023, 7, 1), 28.408, datetime(2023, 8, 4)),
        ("firm_AAPL.financials.cash", date(2023, 9, 30), 29.965, datetime(2023, 11, 3)),
        ("firm_AAPL.financials.revenue", date(2023, 7, 1), 81.797, datetime(2023, 8, 4)),
        ("firm_AAPL.financials.revenue", date(2023, 9, 30), 89.498, datetime(2023, 11, 3)),
        ("firm_AAPL.financials.share_count", date(2023, 10, 20), 15550.061, datetime(2023, 11, 3)),
        ("firm_MSFT.financials.revenue", date(2023, 9, 30), 56.517, datetime(2023, 10, 24))]


def test_earnings_refresh_again_writes_nothing_then_one_new_quarter_only(earnings_first, dagster_home, tmp_path):
    warehouse = copy_of(earnings_first, tmp_path)
    before, raw_before = snapshot(warehouse, "raw_earnings", "earnings"), earnings_raw(warehouse)

    again = refresh_copy(dagster_home, warehouse, "raw_earnings", edgar())
    # from each firm's last filing date on: Apple's 10-K facts (3) and Microsoft's 10-Q fact (1), all unchanged
    assert log_entry(warehouse, again, "earnings") == ("ok", 4, 0, 0, 0, None)
    assert snapshot(warehouse, "raw_earnings", "earnings") == before and earnings_raw(warehouse) == raw_before
    assert observation_counts(again) == (0, 0)

    q1 = fact("2023-10-01", "2023-12-30", 119575000000, Q1, 2024, "Q1", "10-Q", "2024-02-02")
    newer = refresh_copy(dagster_home, warehouse, "raw_earnings", edgar([q1]))
    assert log_entry(warehouse, newer, "earnings") == ("ok", 5, 1, 0, 0, None)
    after = earnings_raw(warehouse)
    assert [r[:6] for r in after if r not in raw_before] == [
        ("AAPL", "revenue", date(2023, 12, 30), Q1, 119575000000.0, date(2024, 2, 2))]
    assert len(after) == len(raw_before) + 1  # stored rows untouched, updated_at included
    assert observation_counts(newer) == (1, 0)
    assert sql(warehouse, "SELECT field_path, ts, round(value, 6), available_at FROM observations "
                          "WHERE source = 'earnings' AND ingested_at > ?", [before[1][1]]) == [
        ("firm_AAPL.financials.revenue", date(2023, 12, 30), 119.575, datetime(2024, 2, 2))]


def test_earnings_restatement_is_a_new_vintage_and_value_stays_the_first_release(earnings_first, dagster_home,
                                                                                tmp_path):
    warehouse = copy_of(earnings_first, tmp_path)
    restated = fact("2023-07-02", "2023-09-30", 89500000000, K10A, 2023, "FY", "10-K/A", "2024-01-15")
    result = refresh_copy(dagster_home, warehouse, "raw_earnings", edgar([restated]))
    assert log_entry(warehouse, result, "earnings") == ("ok", 5, 1, 0, 0, None)
    assert [r[3:6] for r in earnings_raw(warehouse) if r[1] == "revenue" and r[2] == date(2023, 9, 30)
            and r[0] == "AAPL"] == [(K10, 89498000000.0, date(2023, 11, 3)), (K10A, 89500000000.0, date(2024, 1, 15))]
    # point in time: `value` is what the 10-K said on its filing date; the 10-K/A shows up as revised_value
    assert observation_counts(result) == (0, 1)
    assert sql(warehouse, "SELECT round(value, 6), round(revised_value, 6), available_at FROM observations "
                          "WHERE field_path = 'firm_AAPL.financials.revenue' AND ts = '2023-09-30'") == [
        (89.498, 89.5, datetime(2023, 11, 3))]


def test_earnings_http_500_for_one_firm_is_partial_and_keeps_its_stored_rows(earnings_first, dagster_home,
                                                                             tmp_path):
    warehouse = copy_of(earnings_first, tmp_path)
    raw_before = earnings_raw(warehouse)

    result = refresh_copy(dagster_home, warehouse, "raw_earnings", edgar(msft=500), raise_on_error=False)
    error = step_failure(result, "raw_earnings")
    assert "earnings refresh partial" in error and "earnings series MSFT: HTTP 500" in error
    assert "CIK0000789019" in error
    status, fetched, inserted, updated, _, message = log_entry(warehouse, result, "earnings")
    assert (status, fetched, inserted, updated) == ("partial", 3, 0, 0)
    assert message.startswith("earnings series MSFT: HTTP 500")
    assert earnings_raw(warehouse) == raw_before  # Microsoft's rows kept; Apple's re-read facts unchanged


def test_earnings_non_numeric_fact_is_quarantined_naming_firm_metric_and_date(earnings_first, dagster_home,
                                                                             tmp_path):
    warehouse = copy_of(earnings_first, tmp_path)
    bad = fact("2023-10-01", "2023-12-30", "lots", Q1, 2024, "Q1", "10-Q", "2024-02-02")
    result = refresh_copy(dagster_home, warehouse, "raw_earnings", edgar([bad]))
    assert log_entry(warehouse, result, "earnings") == ("ok", 4, 0, 0, 1, None)
    ((source, key, ts, reason, raw, run_id),) = parse_rejects(warehouse, "earnings")
    assert (source, key, ts, run_id) == ("earnings", "AAPL:revenue", "2023-12-30", result.run_id)
    assert Q1 in raw
    assert reason == f"{REVENUE_CONCEPT}: value 'lots' for AAPL revenue 2023-12-30 is not a number"
    assert sql(warehouse, "SELECT count(*) FROM raw_earnings WHERE period_end = '2023-12-30'")[0][0] == 0
    assert sql(warehouse, "SELECT count(*) FROM observations WHERE ts = '2023-12-30'")[0][0] == 0


# --- News (RSS feeds, MiniLM embeddings) -------------------------------------------------------------------------

FOMC = ("https://www.federalreserve.gov/newsevents/pressreleases/monetary20250129a.htm",
        "Federal Reserve issues FOMC statement", "Wed, 29 Jan 2025 14:00:00 -0500",
        "The Committee decided to maintain the target range for the federal funds rate.")
BANKS = ("https://www.federalreserve.gov/newsevents/pressreleases/bcreg20250130a.htm",
         "Agencies issue joint statement on bank capital", "Thu, 30 Jan 2025 16:30:00 GMT", "")
ECB = ("https://www.ecb.europa.eu/press/pr/date/2025/html/ecb.mp250130.en.html", "Monetary policy decisions",
       "Thu, 30 Jan 2025 14:15:00 +0100", "The Governing Council decided to lower the three key ECB interest rates.")
GDP = ("https://www.bea.gov/news/2025/gdp-advance-estimate-4th-quarter-2024",
       "GDP (Advance Estimate), 4th Quarter and Year 2024", "Thu, 30 Jan 2025 08:30:00 -0500",
       "Real GDP increased at an annual rate of 2.3 percent.")
APPROVAL = ("https://www.federalreserve.gov/newsevents/pressreleases/orders20250131a.htm",
            "Federal Reserve Board announces approval of application", "Fri, 31 Jan 2025 15:00:00 GMT", "")
FEED_ITEMS = {"fed_press_all": [FOMC, BANKS], "fed_press_monetary": [FOMC], "ecb_press": [ECB],
              "bea_releases": [GDP]}


def feeds(extra: dict[str, list] | None = None, failing: str | None = None,
          base: dict[str, list] = FEED_ITEMS) -> Callable:
    items = {feed: base[feed] + (extra or {}).get(feed, []) for feed in news.FEEDS}
    bodies = {news.FEEDS[feed]: 500 if feed == failing else rss(items[feed]) for feed in news.FEEDS}
    return lambda rsps: register_feeds(rsps, bodies)


def text(item: tuple) -> str:
    return f"{item[1]}. {item[3]}" if item[3] else item[1]


def news_raw(warehouse) -> list[tuple]:
    return sql(warehouse, "SELECT feed, item_id, published_at, title, updated_at FROM raw_news ORDER BY feed, item_id")


@pytest.fixture(scope="module")
def minilm():
    """The packaged MiniLM, loaded once: the raw_news asset reuses the process-wide model."""
    return news.minilm_embedder()


@pytest.fixture(scope="module")
def news_first(tmp_path_factory, minilm):
    return first_refresh(tmp_path_factory, "raw_news", feeds())


def test_news_first_refresh_embeds_headlines_and_maps_daily_vectors(news_first, minilm):
    warehouse, result = news_first
    assert [r[:4] for r in news_raw(warehouse)] == [
        ("bea_releases", GDP[0], datetime(2025, 1, 30, 13, 30), GDP[1]),
        ("ecb_press", ECB[0], datetime(2025, 1, 30, 13, 15), ECB[1]),
        ("fed_press_all", BANKS[0], datetime(2025, 1, 30, 16, 30), BANKS[1]),
        ("fed_press_all", FOMC[0], datetime(2025, 1, 29, 19, 0), FOMC[1]),
        ("fed_press_monetary", FOMC[0], datetime(2025, 1, 29, 19, 0), FOMC[1])]
    assert log_entry(warehouse, result, "news") == ("ok", 5, 5, 0, 0, None)
    assert result.asset_materializations_for_node("raw_news")[0].metadata["news_days"].value == 2
    assert_provenance(warehouse, "news", "raw_news", None)
    # each stored embedding is MiniLM's embedding of "title. summary"
    stored = dict(((feed, item), np.asarray(v)) for feed, item, v in sql(
        warehouse, "SELECT feed, item_id, embedding FROM raw_news"))
    assert np.allclose(stored[("ecb_press", ECB[0])], minilm([text(ECB)])[0], atol=1e-4)

    obs = sql(warehouse, "SELECT field_path, ts, value, available_at, vector FROM observations WHERE source = 'news' "
                         "ORDER BY ts")
    # one row per UTC day: headline count, available once the day's last headline was published
    assert [r[:4] for r in obs] == [
        ("events.news_embedding", date(2025, 1, 29), 2.0, datetime(2025, 1, 29, 19, 0)),
        ("events.news_embedding", date(2025, 1, 30), 3.0, datetime(2025, 1, 30, 16, 30))]
    for (*_, vector), day in zip(obs, ([FOMC, FOMC], [BANKS, ECB, GDP]), strict=True):
        mean = minilm([text(item) for item in day]).mean(axis=0)
        assert np.allclose(np.asarray(vector), mean / np.linalg.norm(mean), atol=1e-4)


def test_news_refresh_again_writes_nothing_then_one_new_headline_only(news_first, minilm, dagster_home, tmp_path):
    warehouse = copy_of(news_first, tmp_path)
    before, raw_before = snapshot(warehouse, "raw_news", "news"), news_raw(warehouse)
    vectors_before = sql(warehouse, "SELECT ts, vector FROM observations WHERE source = 'news' ORDER BY ts")

    again = refresh_copy(dagster_home, warehouse, "raw_news", feeds())
    # from each feed's latest publication time on: the newest item of each of the four feeds, unchanged
    assert log_entry(warehouse, again, "news") == ("ok", 4, 0, 0, 0, None)
    assert snapshot(warehouse, "raw_news", "news") == before and news_raw(warehouse) == raw_before
    assert observation_counts(again) == (0, 0)
    assert sql(warehouse, "SELECT ts, vector FROM observations WHERE source = 'news' ORDER BY ts") == vectors_before

    newer = refresh_copy(dagster_home, warehouse, "raw_news", feeds({"fed_press_all": [APPROVAL]}))
    assert log_entry(warehouse, newer, "news") == ("ok", 5, 1, 0, 0, None)
    assert [r[:4] for r in news_raw(warehouse) if r not in raw_before] == [
        ("fed_press_all", APPROVAL[0], datetime(2025, 1, 31, 15, 0), APPROVAL[1])]
    assert observation_counts(newer) == (1, 0)
    ((ts, value, available_at, vector),) = sql(
        warehouse, "SELECT ts, value, available_at, vector FROM observations WHERE source = 'news' "
                   "AND ingested_at > ?", [before[1][1]])
    assert (ts, value, available_at) == (date(2025, 1, 31), 1.0, datetime(2025, 1, 31, 15, 0))
    assert np.allclose(np.asarray(vector), minilm([text(APPROVAL)])[0], atol=1e-4)


def test_news_http_500_for_one_feed_is_partial_and_keeps_its_stored_rows(news_first, dagster_home, tmp_path):
    warehouse = copy_of(news_first, tmp_path)
    ecb_before = [r for r in news_raw(warehouse) if r[0] == "ecb_press"]

    serve = feeds({"fed_press_all": [APPROVAL]}, failing="ecb_press")
    result = refresh_copy(dagster_home, warehouse, "raw_news", serve, raise_on_error=False)
    error = step_failure(result, "raw_news")
    assert "news refresh partial" in error and "news series ecb_press: GET" in error and "HTTP 500" in error
    status, _, inserted, updated, _, message = log_entry(warehouse, result, "news")
    assert (status, inserted, updated) == ("partial", 1, 0)
    assert message == f"news series ecb_press: GET {news.FEEDS['ecb_press']} returned HTTP 500"
    assert [r for r in news_raw(warehouse) if r[0] == "ecb_press"] == ecb_before
    # the good feeds' headline still reaches the daily aggregate
    assert sql(warehouse, "SELECT n_headlines FROM news_daily WHERE day = '2025-01-31'") == [(1,)]


def test_news_undated_headline_is_quarantined_naming_the_feed(news_first, dagster_home, tmp_path):
    warehouse = copy_of(news_first, tmp_path)
    undated = ("https://www.federalreserve.gov/newsevents/pressreleases/other20250131a.htm",
               "Minutes of the Board's discount rate meetings", "sometime soon", "")
    result = refresh_copy(dagster_home, warehouse, "raw_news", feeds({"fed_press_all": [undated]}))
    assert log_entry(warehouse, result, "news") == ("ok", 4, 0, 0, 1, None)
    ((source, key, ts, reason, raw, run_id),) = parse_rejects(warehouse, "news")
    assert (source, key, ts, run_id) == ("news", "fed_press_all", None, result.run_id)
    assert reason == "no parseable publication date 'sometime soon'"
    assert undated[1] in raw and news.FEEDS["fed_press_all"] in raw
    assert sql(warehouse, "SELECT count(*) FROM raw_news WHERE title = ?", [undated[1]])[0][0] == 0


def test_news_edited_headline_is_embedded_again(news_first, minilm, dagster_home, tmp_path):
    warehouse = copy_of(news_first, tmp_path)
    edited = (ECB[0], "ECB lowers key interest rates by 25 basis points", ECB[2], ECB[3])
    result = refresh_copy(dagster_home, warehouse, "raw_news", feeds(base={**FEED_ITEMS, "ecb_press": [edited]}))
    assert log_entry(warehouse, result, "news") == ("ok", 4, 0, 1, 0, None)
    ((title, embedding),) = sql(warehouse, "SELECT title, embedding FROM raw_news WHERE feed = 'ecb_press'")
    assert title == edited[1]
    assert np.allclose(np.asarray(embedding), minilm([text(edited)])[0], atol=1e-4)
