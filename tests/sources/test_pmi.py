"""Offline tests for the DBnomics ISM PMI source: HTTP is faked with ``responses``."""

from __future__ import annotations

import math
from datetime import date, datetime

import pyarrow as pa
import pytest
import requests
import responses
from responses import matchers

from gwm_assets.sources.base import SourceError
from gwm_assets.sources.pmi import (
    DEFAULT_SERIES,
    KEY_COLUMNS,
    RAW_COLUMNS,
    RAW_TABLE,
    SOURCE,
    VALUE_COLUMNS,
    PMIClient,
    release_date_for,
)

BASE = "https://api.db.nomics.world/v22"
QUERY = {"observations": "1", "format": "json"}


def url_for(series_id: str) -> str:
    return f"{BASE}/series/{series_id}?observations=1&format=json"


def doc(series_id: str = "ISM/pmi/pm", periods=None, values=None, name: str = "PMI") -> dict:
    """A DBnomics series document in the shape the v22 API returns."""
    provider, dataset, code = series_id.split("/")
    periods = periods if periods is not None else ["2023-09", "2023-10", "2023-11", "2023-12", "2024-01"]
    values = values if values is not None else [49.0, 46.7, 46.7, 47.4, 49.1]
    return {"series": {"num_found": 1, "limit": 1000, "offset": 0, "docs": [{
        "@frequency": "monthly", "provider_code": provider, "dataset_code": dataset, "dataset_name": dataset,
        "series_code": code, "series_name": name, "indexed_at": "2024-02-02T06:12:44.123Z",
        "period": periods, "period_start_day": [f"{p}-01" for p in periods], "value": values,
    }]}}


def register(series_id: str, payload: dict, status: int = 200) -> None:
    responses.add(responses.GET, url_for(series_id), json=payload, status=status,
                  match=[matchers.query_param_matcher(QUERY)])


def test_module_constants():
    assert (SOURCE, RAW_TABLE) == ("pmi", "raw_pmi")
    assert KEY_COLUMNS == ("series_code", "period", "value")  # each published value of a month is a vintage
    assert set(KEY_COLUMNS + VALUE_COLUMNS) <= set(RAW_COLUMNS)
    assert RAW_COLUMNS["period"] == "DATE" and RAW_COLUMNS["released_at"] == "TIMESTAMP"
    assert "ISM/pmi/pm" in DEFAULT_SERIES and all(s.count("/") == 2 for s in DEFAULT_SERIES)


@responses.activate
def test_fetch_columns_types_values_and_release_times():
    register("ISM/pmi/pm", doc())
    result = PMIClient().fetch(["ISM/pmi/pm"])
    table = result.table
    assert result.rejects == []
    assert table.column_names == list(RAW_COLUMNS)
    types = {f.name: f.type for f in table.schema}
    assert types["provider"] == pa.string() and types["series_code"] == pa.string()
    assert types["period"] == pa.date32() and types["value"] == pa.float64()
    assert types["released_at"] == pa.timestamp("us")
    rows = table.to_pylist()
    assert [r["period"] for r in rows] == [date(2023, 9, 1), date(2023, 10, 1), date(2023, 11, 1),
                                           date(2023, 12, 1), date(2024, 1, 1)]
    assert [r["value"] for r in rows] == [49.0, 46.7, 46.7, 47.4, 49.1]
    assert {(r["provider"], r["dataset"], r["series_code"], r["series_name"]) for r in rows} == {
        ("ISM", "pmi", "ISM/pmi/pm", "PMI")}
    released = {r["period"]: r["released_at"] for r in rows}
    assert released[date(2024, 1, 1)] == datetime(2024, 2, 1, 15, 0)  # Thu 1 Feb, 10:00 EST
    assert released[date(2023, 9, 1)] == datetime(2023, 10, 2, 14, 0)  # 1 Oct is a Sunday -> Mon, EDT
    assert released[date(2023, 12, 1)] == datetime(2024, 1, 3, 15, 0)  # New Year's holiday, January lag
    assert {r["release_rule"] for r in rows} == {"first business day of next month 10:00 ET"}
    assert "gwm" in responses.calls[0].request.headers["User-Agent"]


@responses.activate
def test_fetch_several_series_uses_injected_session_and_services_rule():
    register("ISM/pmi/pm", doc(periods=["2024-01"], values=[49.1]))
    register("ISM/nm-pmi/pm", doc("ISM/nm-pmi/pm", periods=["2024-01"], values=[53.4], name="Services PMI"))
    session = requests.Session()
    session.headers["User-Agent"] = "test-agent"
    result = PMIClient(session=session).fetch(["ISM/pmi/pm", "ISM/nm-pmi/pm"])
    rows = {r["series_code"]: r for r in result.table.to_pylist()}
    assert rows["ISM/nm-pmi/pm"]["value"] == 53.4
    assert rows["ISM/nm-pmi/pm"]["released_at"] == datetime(2024, 2, 5, 15, 0)  # third business day
    assert rows["ISM/nm-pmi/pm"]["release_rule"] == "third business day of next month 10:00 ET"
    assert rows["ISM/pmi/pm"]["released_at"] == datetime(2024, 2, 1, 15, 0)
    assert all(call.request.headers["User-Agent"] == "test-agent" for call in responses.calls)
    assert len(responses.calls) == 2


@responses.activate
def test_since_keeps_only_later_periods():
    register("ISM/pmi/pm", doc())
    result = PMIClient().fetch(["ISM/pmi/pm"], since=date(2023, 12, 1))
    assert result.table.column("period").to_pylist() == [date(2023, 12, 1), date(2024, 1, 1)]
    assert result.table.column("value").to_pylist() == [47.4, 49.1]


@responses.activate
def test_na_and_non_numeric_values_are_rejected_not_loaded():
    register("ISM/pmi/pm", doc(periods=["2023-10", "2023-11", "2023-12", "2024-01"],
                               values=[46.7, "NA", None, "n/a"]))
    result = PMIClient().fetch(["ISM/pmi/pm"])
    assert result.table.column("period").to_pylist() == [date(2023, 10, 1)]
    assert [(r.source, r.source_key, r.ts) for r in result.rejects] == [
        ("pmi", "ISM/pmi/pm", date(2023, 11, 1)), ("pmi", "ISM/pmi/pm", date(2023, 12, 1)),
        ("pmi", "ISM/pmi/pm", date(2024, 1, 1))]
    first = result.rejects[0]
    assert first.reason == "non-numeric value 'NA'"
    assert first.raw == {"series": "ISM/pmi/pm", "period": "2023-11", "value": "NA"}
    row = first.as_row()
    assert row["source_key"] == "ISM/pmi/pm" and row["ts"] == "2023-11-01"


@responses.activate
def test_non_finite_value_is_rejected():
    # json.dumps writes NaN/Infinity literals, which requests parses back into floats
    register("ISM/pmi/pm", doc(periods=["2023-12", "2024-01"], values=[math.nan, math.inf]))
    result = PMIClient().fetch(["ISM/pmi/pm"])
    assert result.table.num_rows == 0
    assert [r.reason.split()[0] for r in result.rejects] == ["non-finite", "non-finite"]


@responses.activate
def test_duplicate_period_keeps_first_and_rejects_the_rest():
    register("ISM/pmi/pm", doc(periods=["2023-12", "2024-01", "2024-01"], values=[47.4, 49.1, 50.0]))
    result = PMIClient().fetch(["ISM/pmi/pm"])
    assert result.table.column("value").to_pylist() == [47.4, 49.1]
    assert len(result.rejects) == 1
    reject = result.rejects[0]
    assert (reject.reason, reject.ts, reject.raw["value"]) == ("duplicate period", date(2024, 1, 1), 50.0)


@responses.activate
def test_malformed_period_is_rejected_with_reason():
    register("ISM/pmi/pm", doc(periods=["2024-13", "Jan 2024", "2024-02"], values=[1.0, 2.0, 47.8]))
    result = PMIClient().fetch(["ISM/pmi/pm"])
    assert result.table.column("period").to_pylist() == [date(2024, 2, 1)]
    assert [r.reason for r in result.rejects] == ["malformed period '2024-13'", "malformed period 'Jan 2024'"]
    assert all(r.ts is None and r.source_key == "ISM/pmi/pm" for r in result.rejects)


@responses.activate
def test_http_404_raises_source_error_naming_series_status_and_message():
    register("ISM/pmi/nope", {"message": "Series not found: ISM/pmi/nope"}, status=404)
    with pytest.raises(SourceError) as info:
        PMIClient().fetch(["ISM/pmi/nope"])
    err = info.value
    assert err.source == "pmi" and err.series == "ISM/pmi/nope"
    text = str(err)
    assert "404" in text and "Series not found" in text and f"{BASE}/series/ISM/pmi/nope" in text


@responses.activate
def test_connection_error_raises_source_error():
    responses.add(responses.GET, url_for("ISM/pmi/pm"), body=requests.ConnectionError("refused"))
    with pytest.raises(SourceError, match="ISM/pmi/pm.*refused"):
        PMIClient().fetch(["ISM/pmi/pm"])


@responses.activate
def test_empty_docs_raises_source_error():
    register("ISM/pmi/pm", {"series": {"num_found": 0, "docs": []}})
    with pytest.raises(SourceError, match="no observations returned") as info:
        PMIClient().fetch(["ISM/pmi/pm"])
    assert info.value.series == "ISM/pmi/pm"


@responses.activate
def test_empty_observations_raises_source_error():
    register("ISM/pmi/pm", doc(periods=[], values=[]))
    with pytest.raises(SourceError, match="no observations returned"):
        PMIClient().fetch(["ISM/pmi/pm"])


@pytest.mark.parametrize(("period", "business_day", "expected"), [
    (date(2024, 1, 1), 1, datetime(2024, 2, 1, 15, 0)),  # Thu 1 Feb 2024, EST
    (date(2024, 5, 1), 1, datetime(2024, 6, 3, 14, 0)),  # Sat 1 Jun -> Mon 3 Jun, EDT
    (date(2025, 10, 1), 1, datetime(2025, 11, 3, 15, 0)),  # Sat 1 Nov -> Mon 3 Nov, DST over
    (date(2025, 8, 1), 1, datetime(2025, 9, 2, 14, 0)),  # Mon 1 Sep 2025 is Labor Day
    (date(2024, 12, 1), 1, datetime(2025, 1, 3, 15, 0)),  # Jan 1 holiday, January one day later
    (date(2024, 1, 1), 3, datetime(2024, 2, 5, 15, 0)),  # services: third business day
])
def test_release_date_rule(period, business_day, expected):
    assert release_date_for(period, business_day) == expected
