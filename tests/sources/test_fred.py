"""FRED through the real fredapi code path, its urllib traffic intercepted."""

from __future__ import annotations

from datetime import date

import pytest

from gwm_assets.sources.base import SourceError
from gwm_assets.sources.fred import FredClient
from tests.sources.fakes import FakeFred

GDP = [("2023-07-01", "2023-10-26", "22225.350"), ("2023-07-01", "2023-11-29", "22293.3"),
       ("2023-10-01", "2024-01-25", "22490.692"), ("2024-01-01", "2024-04-25", ".")]


def test_vintages_and_missing_markers(monkeypatch):
    fake = FakeFred({"GDPC1": GDP}).install(monkeypatch)
    result = FredClient(api_key="test-key").fetch(["GDPC1"])
    rows = result.table.to_pylist()
    assert [(r["date"], r["realtime_start"], r["value"]) for r in rows] == [
        (date(2023, 7, 1), date(2023, 10, 26), 22225.35), (date(2023, 7, 1), date(2023, 11, 29), 22293.3),
        (date(2023, 10, 1), date(2024, 1, 25), 22490.692), (date(2024, 1, 1), date(2024, 4, 25), None)]
    assert result.rejects == []
    url = fake.urls[0]
    assert "series_id=GDPC1" in url and "realtime_start=1776-07-04" in url and url.endswith("api_key=test-key")
    assert "observation_start" not in url


def test_incremental_asks_from_the_watermark(monkeypatch):
    fake = FakeFred({"GDPC1": GDP}).install(monkeypatch)
    result = FredClient(api_key="k").fetch(["GDPC1"], since={"GDPC1": date(2023, 7, 1)}, revision_days=0)
    assert "observation_start=2023-07-02" in fake.urls[0]
    assert {r["date"] for r in result.table.to_pylist()} == {date(2023, 10, 1), date(2024, 1, 1)}
    FredClient(api_key="k").fetch(["GDPC1"], since={"GDPC1": date(2023, 10, 1)}, revision_days=92)
    assert "observation_start=2023-07-02" in fake.urls[1]


def test_bad_rows_are_rejected_with_series_and_date(monkeypatch):
    rows = [("2024-01-01", "2024-02-01", "3.7"), ("2024-02-01", "2024-03-01", "n/a"),
            ("2024-03-01", "2024-04-01", "inf"), ("2024-03-01", "2024-04-01", "3.9")]
    FakeFred({"UNRATE": rows}).install(monkeypatch)
    result = FredClient(api_key="k").fetch(["UNRATE"])
    assert [r["value"] for r in result.table.to_pylist()] == [3.7, 3.9]
    reasons = sorted((r.source_key, str(r.ts), r.reason) for r in result.rejects)
    assert reasons == [("UNRATE", "2024-02-01", "non-numeric value 'n/a'"),
                       ("UNRATE", "2024-03-01", "non-finite value 'inf'")]


def test_http_error_names_the_series(monkeypatch):
    FakeFred({}, fail={"NOPE": 400}).install(monkeypatch)
    with pytest.raises(SourceError, match=r"fred series NOPE: FRED refused the request: .*does not exist"):
        FredClient(api_key="k").fetch(["NOPE"])


def test_missing_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("FRED_API_KEY", raising=False)
    with pytest.raises(SourceError, match="FRED_API_KEY is not set. Fix: get a free key"):
        FredClient()


def test_requests_are_paced_under_the_api_limit(monkeypatch):
    FakeFred({s: GDP for s in ("A", "B", "C")}).install(monkeypatch)
    waits = []
    monkeypatch.setattr("gwm_assets.sources.fred.time.sleep", waits.append)
    client = FredClient(api_key="k")  # the real API: paced at 110 requests a minute by default
    assert client.min_interval_s == pytest.approx(60 / 110)
    client.fetch(["A", "B", "C"])
    assert len(waits) == 2 and all(0 < w <= 60 / 110 for w in waits)  # the first request does not wait
    waits.clear()
    FredClient(api_key="k", requests_per_minute=0).fetch(["A", "B"])
    assert waits == []
