"""Fake network endpoints for offline tests: FRED (urllib, XML) and Yahoo's chart API (requests)."""

from __future__ import annotations

import io
import re
import urllib.error
import urllib.parse
from datetime import UTC, date, datetime, time

import fredapi.fred


class FakeFred:
    """Serves ``series/observations`` from ``series[id] = [(date, realtime_start, value_text), ...]``."""

    def __init__(self, series: dict[str, list[tuple[str, str, str]]], fail: dict[str, int] | None = None):
        self.series = series
        self.fail = fail or {}
        self.urls: list[str] = []

    def install(self, monkeypatch) -> FakeFred:
        monkeypatch.setattr(fredapi.fred, "urlopen", self.urlopen)
        return self

    def urlopen(self, url, *args, **kwargs):
        self.urls.append(url)
        query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
        sid = query["series_id"][0]
        if sid in self.fail:
            message = "Bad Request.  The series does not exist."
            body = f'<?xml version="1.0"?><error code="{self.fail[sid]}" message="{message}"/>'
            raise urllib.error.HTTPError(url, self.fail[sid], "Bad Request", {}, io.BytesIO(body.encode()))
        start = query.get("observation_start", ["0000-01-01"])[0]
        rows = [r for r in self.series.get(sid, []) if r[0] >= start]
        items = "".join(f'<observation realtime_start="{rt}" realtime_end="9999-12-31" date="{d}" value="{v}"/>'
                        for d, rt, v in rows)
        xml = f'<?xml version="1.0" encoding="utf-8"?><observations count="{len(rows)}">{items}</observations>'
        return io.BytesIO(xml.encode())


def chart_json(symbol: str, days: list[date], closes: list[float], adj: list[float] | None = None) -> dict:
    """A Yahoo v8 chart payload with daily bars at 16:00 New York (21:00 UTC in winter)."""
    stamps = [int(datetime.combine(d, time(14, 30), tzinfo=UTC).timestamp()) for d in days]
    return {"chart": {"error": None, "result": [{
        "meta": {"currency": "USD", "symbol": symbol, "exchangeName": "NMS", "instrumentType": "EQUITY",
                 "firstTradeDate": 345479400, "regularMarketTime": stamps[-1] if stamps else 0, "gmtoffset": -18000,
                 "timezone": "EST", "exchangeTimezoneName": "America/New_York", "priceHint": 2,
                 "dataGranularity": "1d", "range": "", "validRanges": ["1d", "5d", "max"]},
        "timestamp": stamps,
        "indicators": {"quote": [{"open": closes, "high": closes, "low": closes, "close": closes,
                                  "volume": [1000] * len(closes)}],
                       "adjclose": [{"adjclose": adj or closes}]}}]}}


def register_yahoo(rsps, charts: dict[str, dict]) -> None:
    rsps.get("https://fc.yahoo.com/", status=404)
    rsps.get("https://query1.finance.yahoo.com/v1/test/getcrumb", body="crumb")
    rsps.get(re.compile(r"https://query2\.finance\.yahoo\.com/v1/test/getcrumb.*"), body="crumb")
    for symbol, payload in charts.items():
        pattern = re.compile(r"https://query[12]\.finance\.yahoo\.com/v8/finance/chart/" + re.escape(symbol) + r"\b.*")
        rsps.get(pattern, json=payload)
