"""Yahoo through the real yfinance code path with an injected requests.Session (responses intercepts it)."""

from __future__ import annotations

from datetime import date

import pytest
import requests
import responses
import yfinance as yf

from gwm_assets.sources.base import SourceError
from gwm_assets.sources.yahoo import YahooClient
from tests.sources.fakes import chart_json, register_yahoo

DAYS = [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)]


@pytest.fixture
def yahoo(tmp_path):
    yf.data.SingletonMeta._instances.clear()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps
    yf.data.SingletonMeta._instances.clear()


def test_history_has_raw_and_adjusted_close(yahoo, tmp_path):
    register_yahoo(yahoo, {"AAPL": chart_json("AAPL", DAYS, [185.64, 184.25, 181.91], [184.73, 183.35, 181.02])})
    result = YahooClient(session=requests.Session(), cache_dir=str(tmp_path)).fetch(["AAPL"], since={"AAPL": None})
    rows = result.table.to_pylist()
    assert [r["date"] for r in rows] == DAYS
    assert [round(r["close"], 2) for r in rows] == [185.64, 184.25, 181.91]
    assert [round(r["adj_close"], 2) for r in rows] == [184.73, 183.35, 181.02]
    assert result.rejects == []


def test_empty_answer_is_an_error_naming_the_ticker(yahoo, tmp_path):
    register_yahoo(yahoo, {"ZZZZ": chart_json("ZZZZ", [], [])})
    with pytest.raises(SourceError, match="yahoo series ZZZZ"):
        YahooClient(session=requests.Session(), cache_dir=str(tmp_path)).fetch(["ZZZZ"])


def test_non_numeric_close_is_rejected(yahoo, tmp_path):
    register_yahoo(yahoo, {"MSFT": chart_json("MSFT", DAYS, [370.0, None, 368.0])})
    result = YahooClient(session=requests.Session(), cache_dir=str(tmp_path)).fetch(["MSFT"])
    assert [r["date"] for r in result.table.to_pylist()] == [DAYS[0], DAYS[2]]
    assert len(result.rejects) == 1 and result.rejects[0].ts == DAYS[1] and result.rejects[0].source_key == "MSFT"
