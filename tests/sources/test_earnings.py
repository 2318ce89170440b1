"""SEC EDGAR company facts: offline tests with the HTTP faked by ``responses``.

Payloads copy the companyfacts shape; Apple's FY2023 revenue and cash are the published numbers, the
10-K/A restatement and the null value are made up to exercise those paths.
"""

from __future__ import annotations

import copy
from datetime import date

import pyarrow as pa
import pytest
import requests
import responses

from gwm_assets.sources import earnings
from gwm_assets.sources.base import SourceError
from gwm_assets.sources.earnings import (
    ARROW_SCHEMA,
    CONCEPTS,
    FIRMS,
    KEY_COLUMNS,
    RAW_COLUMNS,
    EdgarClient,
)

BASE = "https://data.sec.gov/api/xbrl/companyfacts"
AAPL_URL = f"{BASE}/CIK0000320193.json"
MSFT_URL = f"{BASE}/CIK0000789019.json"
Q3 = "0000320193-23-000077"
K10 = "0000320193-23-000106"
K10A = "0000320193-24-000010"
Q1 = "0000320193-24-000006"


def fact(start, end, val, accn, fy, fp, form, filed, frame=None):
    out = {"end": end, "val": val, "accn": accn, "fy": fy, "fp": fp, "form": form, "filed": filed}
    if start is not None:
        out["start"] = start
    if frame is not None:
        out["frame"] = frame
    return out


REVENUE = [
    fact("2023-04-02", "2023-07-01", 81797000000, Q3, 2023, "Q3", "10-Q", "2023-08-04", "CY2023Q2"),
    # the same fact again, as listed under another frame: dropped silently
    fact("2023-04-02", "2023-07-01", 81797000000, Q3, 2023, "Q3", "10-Q", "2023-08-04"),
    fact("2022-09-25", "2023-09-30", 383285000000, K10, 2023, "FY", "10-K", "2023-11-03", "CY2023"),
    fact("2023-07-02", "2023-09-30", 89498000000, K10, 2023, "FY", "10-K", "2023-11-03", "CY2023Q3"),
    fact("2023-07-02", "2023-09-30", 89500000000, K10A, 2023, "FY", "10-K/A", "2024-01-15"),
    fact("2023-10-01", "2023-12-30", None, Q1, 2024, "Q1", "10-Q", "2024-02-02"),
    fact("2023-07-02", "2023-09-30", 89498000000, "0000320193-23-000104", 2023, "Q4", "8-K", "2023-11-02"),
]
CASH = [
    fact(None, "2023-07-01", 28408000000, Q3, 2023, "Q3", "10-Q", "2023-08-04", "CY2023Q2I"),
    fact(None, "2023-09-30", 29965000000, K10, 2023, "FY", "10-K", "2023-11-03", "CY2023Q3I"),
]
NET_INCOME_YTD = [  # nine months to date in a 10-Q: not a quarter, dropped
    fact("2022-09-25", "2023-07-01", 74039000000, Q3, 2023, "Q3", "10-Q", "2023-08-04"),
]
SHARES = [fact(None, "2023-10-20", 15550061000, K10, 2023, "FY", "10-K", "2023-11-03")]

APPLE = {
    "cik": 320193,
    "entityName": "Apple Inc.",
    "facts": {
        "dei": {"EntityCommonStockSharesOutstanding": {"label": "Shares", "units": {"shares": SHARES}}},
        "us-gaap": {
            "RevenueFromContractWithCustomerExcludingAssessedTax": {"label": "Revenue", "units": {"USD": REVENUE}},
            "CashAndCashEquivalentsAtCarryingValue": {"label": "Cash", "units": {"USD": CASH}},
            "NetIncomeLoss": {"label": "Net income", "units": {"USD": NET_INCOME_YTD}},
        },
    },
}


def client(**kw) -> EdgarClient:
    kw.setdefault("min_interval_s", 0)
    return EdgarClient(session=requests.Session(), **kw)


def rows(result) -> list[dict]:
    return result.table.to_pylist()


def pick(result, metric: str) -> list[dict]:
    return [r for r in rows(result) if r["metric"] == metric]


@responses.activate
def test_fetch_returns_quarter_rows_with_values_dates_and_types():
    responses.get(AAPL_URL, json=APPLE)
    result = client().fetch(["AAPL"])
    assert list(result.table.column_names) == list(RAW_COLUMNS)
    assert result.table.schema.equals(ARROW_SCHEMA)
    assert [str(t) for t in result.table.schema.types] == [
        "string", "int64", "string", "string", "string", "date32[day]", "date32[day]", "int32", "int32",
        "string", "string", "date32[day]", "string", "double"]
    revenue = pick(result, "revenue")
    assert [(r["period_end"], r["value"], r["accession"]) for r in revenue] == [
        (date(2023, 7, 1), 81797000000.0, Q3),
        (date(2023, 9, 30), 89498000000.0, K10),
        (date(2023, 9, 30), 89500000000.0, K10A),
    ]
    first = revenue[0]
    assert first["ticker"] == "AAPL" and first["cik"] == 320193
    assert first["concept"] == "RevenueFromContractWithCustomerExcludingAssessedTax" and first["unit"] == "USD"
    assert first["period_start"] == date(2023, 4, 2) and first["duration_days"] == 90
    assert (first["fiscal_year"], first["fiscal_period"], first["form"]) == (2023, "Q3", "10-Q")
    assert first["filed"] == date(2023, 8, 4)


@responses.activate
def test_instants_have_no_start_or_duration():
    responses.get(AAPL_URL, json=APPLE)
    result = client().fetch(["AAPL"])
    cash = pick(result, "cash")
    assert [(r["period_end"], r["value"]) for r in cash] == [(date(2023, 7, 1), 28408000000.0),
                                                              (date(2023, 9, 30), 29965000000.0)]
    assert all(r["period_start"] is None and r["duration_days"] is None for r in cash)
    shares = pick(result, "shares_outstanding")
    assert [(r["concept"], r["unit"], r["value"]) for r in shares] == [
        ("dei:EntityCommonStockSharesOutstanding", "shares", 15550061000.0)]


@responses.activate
def test_full_year_ytd_and_other_forms_are_dropped():
    responses.get(AAPL_URL, json=APPLE)
    result = client().fetch(["AAPL"])
    assert all(80 <= r["duration_days"] <= 100 for r in rows(result) if r["duration_days"] is not None)
    assert 383285000000.0 not in [r["value"] for r in rows(result)]
    assert pick(result, "net_income") == []
    assert {r["form"] for r in rows(result)} <= {"10-Q", "10-K", "10-K/A"}
    assert "0000320193-23-000104" not in result.table.column("accession").to_pylist()


@responses.activate
def test_user_agent_is_sent_and_cik_zero_padded():
    responses.get(AAPL_URL, json=APPLE)
    client(user_agent="test-suite ops@example.org").fetch(["aapl"])
    assert len(responses.calls) == 1
    assert responses.calls[0].request.url == AAPL_URL
    assert responses.calls[0].request.headers["User-Agent"] == "test-suite ops@example.org"


def test_user_agent_defaults_from_env(monkeypatch):
    monkeypatch.setenv("SEC_USER_AGENT", "env agent env@example.org")
    assert EdgarClient().user_agent == "env agent env@example.org"
    monkeypatch.delenv("SEC_USER_AGENT")
    assert "@" in EdgarClient().user_agent


@responses.activate
def test_since_filters_on_filing_date():
    responses.get(AAPL_URL, json=APPLE)
    result = client().fetch(["AAPL"], since=date(2023, 11, 3))
    assert {r["filed"] for r in rows(result)} == {date(2023, 11, 3), date(2024, 1, 15)}
    assert min(result.table.column("filed").to_pylist()) >= date(2023, 11, 3)
    later = client().fetch(["AAPL"], since=date(2024, 1, 16))
    assert [r["accession"] for r in rows(later)] == []
    assert [rj.ts for rj in later.rejects] == [date(2023, 12, 30)]  # the null fact filed 2024-02-02


@responses.activate
def test_restatement_is_a_new_row_and_keys_are_unique():
    responses.get(AAPL_URL, json=APPLE)
    responses.get(AAPL_URL, json=APPLE)
    first, again = client().fetch(["AAPL"]), client().fetch(["AAPL"])
    q4 = [r for r in pick(first, "revenue") if r["period_end"] == date(2023, 9, 30)]
    assert {(r["form"], r["value"]) for r in q4} == {("10-K", 89498000000.0), ("10-K/A", 89500000000.0)}
    keys = [tuple(r[k] for k in KEY_COLUMNS) for r in rows(first)]
    assert len(keys) == len(set(keys)), "the natural key must be unique within a fetch"
    assert all(v is not None for key in keys for v in key)
    assert rows(first) == rows(again), "re-fetching the same filings gives the same rows"


@responses.activate
def test_null_value_becomes_reject_naming_ticker_metric_and_date():
    responses.get(AAPL_URL, json=APPLE)
    result = client().fetch(["AAPL"])
    assert len(result.rejects) == 1
    reject = result.rejects[0]
    assert reject.source == "earnings" and reject.source_key == "AAPL:revenue"
    assert reject.ts == date(2023, 12, 30)
    assert "None" in reject.reason and "2023-12-30" in reject.reason
    assert reject.raw["accn"] == Q1
    assert date(2023, 12, 30) not in result.table.column("period_end").to_pylist()


@responses.activate
def test_nan_string_and_missing_dates_are_rejected():
    bad = [
        fact("2023-04-02", "2023-07-01", float("nan"), Q3, 2023, "Q3", "10-Q", "2023-08-04"),
        fact("2023-07-02", "2023-09-30", "lots", K10, 2023, "FY", "10-K", "2023-11-03"),
        fact("2023-10-01", None, 1.0, Q1, 2024, "Q1", "10-Q", "2024-02-02"),
        {"start": "2023-10-01", "end": "2023-12-30", "val": 1.0, "accn": Q1, "form": "10-Q"},
    ]
    payload = {"facts": {"us-gaap": {"GrossProfit": {"units": {"USD": bad}}}}}
    responses.get(AAPL_URL, json=payload)
    result = client().fetch(["AAPL"])
    assert result.num_rows == 0
    reasons = [r.reason for r in result.rejects]
    assert len(reasons) == 4 and all(r.source_key == "AAPL:gross_profit" for r in result.rejects)
    assert "not a number" in reasons[0] and "not a number" in reasons[1]
    assert "end" in reasons[2] and result.rejects[2].ts is None
    assert "filed" in reasons[3]


@responses.activate
def test_conflicting_duplicate_rejected_exact_duplicate_silent():
    dupes = [
        fact("2023-07-02", "2023-09-30", 100.0, K10, 2023, "FY", "10-K", "2023-11-03", "CY2023Q3"),
        fact("2023-07-02", "2023-09-30", 100.0, K10, 2023, "FY", "10-K", "2023-11-03"),
        fact("2023-07-02", "2023-09-30", 101.0, K10, 2023, "FY", "10-K", "2023-11-03"),
    ]
    responses.get(AAPL_URL, json={"facts": {"us-gaap": {"OperatingIncomeLoss": {"units": {"USD": dupes}}}}})
    result = client().fetch(["AAPL"])
    assert [r["value"] for r in rows(result)] == [100.0]
    assert len(result.rejects) == 1
    assert result.rejects[0].reason.startswith("conflicting duplicate")
    assert result.rejects[0].raw["val"] == 101.0


@responses.activate
def test_concept_priority_is_per_fact():
    preferred = [fact("2023-07-02", "2023-09-30", 1.0, K10, 2023, "FY", "10-K", "2023-11-03")]
    fallback = [fact("2023-07-02", "2023-09-30", 2.0, K10, 2023, "FY", "10-K", "2023-11-03"),
                fact("2023-04-02", "2023-07-01", 3.0, Q3, 2023, "Q3", "10-Q", "2023-08-04")]
    payload = {"facts": {"us-gaap": {
        "Revenues": {"units": {"USD": preferred}},
        "RevenueFromContractWithCustomerExcludingAssessedTax": {"units": {"USD": fallback}},
    }}}
    responses.get(AAPL_URL, json=payload)
    result = client().fetch(["AAPL"])
    assert [(r["concept"], r["value"]) for r in pick(result, "revenue")] == [
        ("RevenueFromContractWithCustomerExcludingAssessedTax", 3.0), ("Revenues", 1.0)]
    assert result.rejects == []


@responses.activate
def test_http_403_raises_source_error_with_user_agent_hint():
    responses.get(AAPL_URL, status=403, body="Request Rate Threshold Exceeded")
    with pytest.raises(SourceError) as err:
        client().fetch(["AAPL"])
    text = str(err.value)
    assert "403" in text and AAPL_URL in text and "User-Agent" in text
    assert err.value.source == "earnings" and err.value.series == "AAPL"


@responses.activate
def test_unknown_ticker_raises_before_any_request_unless_cik_given():
    with pytest.raises(SourceError) as err:
        client().fetch(["AAPL", "ZZZZ"])
    assert "ZZZZ" in str(err.value) and all(t in str(err.value) for t in ("AAPL", "MSFT", "NVDA"))
    assert len(responses.calls) == 0
    responses.get(f"{BASE}/CIK0000000042.json", json=APPLE)
    result = client().fetch(["ZZZZ"], ciks={"zzzz": 42})
    assert set(result.table.column("ticker").to_pylist()) == {"ZZZZ"}
    assert set(result.table.column("cik").to_pylist()) == {42}


@responses.activate
def test_company_without_any_concept_raises():
    responses.get(AAPL_URL, json={"cik": 320193, "entityName": "Apple Inc.",
                                  "facts": {"us-gaap": {"Goodwill": {"units": {"USD": CASH}}}}})
    with pytest.raises(SourceError, match="no quarterly facts"):
        client().fetch(["AAPL"])


@responses.activate
def test_requests_are_spaced_by_min_interval(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(earnings.time, "sleep", sleeps.append)
    msft = copy.deepcopy(APPLE)
    msft["cik"], msft["entityName"] = 789019, "Microsoft Corporation"
    responses.get(AAPL_URL, json=APPLE)
    responses.get(MSFT_URL, json=msft)
    result = client(min_interval_s=5.0).fetch(["AAPL", "MSFT"])
    assert [c.request.url for c in responses.calls] == [AAPL_URL, MSFT_URL]
    assert len(sleeps) == 1 and 4.0 < sleeps[0] <= 5.0
    assert set(result.table.column("ticker").to_pylist()) == {"AAPL", "MSFT"}


def test_declared_columns_and_concepts_are_consistent():
    assert set(KEY_COLUMNS) <= set(RAW_COLUMNS)
    assert pa.schema(ARROW_SCHEMA).names == list(RAW_COLUMNS)
    assert {"AAPL": 320193, "MSFT": 789019, "NVDA": 1045810}.items() <= FIRMS.items()
    assert set(CONCEPTS) == {"revenue", "cogs", "gross_profit", "operating_income", "net_income", "cash",
                             "total_debt", "capex", "operating_cash_flow", "shares_outstanding"}
