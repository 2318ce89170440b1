"""Fake network endpoints for offline tests: FRED (urllib, XML), and through ``responses`` Yahoo's chart API,
DBnomics (PMI), SEC EDGAR company facts and submissions, and RSS feeds."""

from __future__ import annotations

import io
import re
import urllib.error
import urllib.parse
from datetime import UTC, date, datetime, time
from xml.sax.saxutils import escape

import fredapi.fred
from responses import matchers


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


DBNOMICS = "https://api.db.nomics.world/v22"
EDGAR = "https://data.sec.gov/api/xbrl/companyfacts"


def register_dbnomics(rsps, docs: dict[str, dict | int]) -> None:
    """DBnomics ``series/{id}?observations=1&format=json``: a series document, or an int HTTP error status."""
    query = [matchers.query_param_matcher({"observations": "1", "format": "json"})]
    for series_id, doc in docs.items():
        url = f"{DBNOMICS}/series/{series_id}"
        if isinstance(doc, int):
            rsps.get(url, status=doc, json={"message": f"internal error serving {series_id}"}, match=query)
        else:
            rsps.get(url, json=doc, match=query)


def register_edgar(rsps, companies: dict[int, dict | int]) -> None:
    """EDGAR ``companyfacts/CIK##########.json`` by CIK: a companyfacts document, or an int HTTP error status."""
    for cik, payload in companies.items():
        url = f"{EDGAR}/CIK{cik:010d}.json"
        if isinstance(payload, int):
            rsps.get(url, status=payload, body="Internal Server Error")
        else:
            rsps.get(url, json=payload)


EDGAR_SUBMISSIONS = "https://data.sec.gov/submissions"


def submissions_json(cik: int, name: str, filings: list[tuple[str, str, str, str]]) -> dict:
    """An EDGAR submissions document whose ``filings.recent`` lists ``(accession, form, filing date, report
    date)`` newest first, as parallel arrays the way the SEC serves them."""
    return {"cik": str(cik), "name": name, "tickers": [], "filings": {"files": [], "recent": {
        "accessionNumber": [f[0] for f in filings], "form": [f[1] for f in filings],
        "filingDate": [f[2] for f in filings], "reportDate": [f[3] for f in filings],
        "acceptanceDateTime": [f"{f[2]}T16:05:00.000Z" for f in filings],
        "primaryDocument": [f"doc{i}.htm" for i in range(len(filings))]}}}


def register_submissions(rsps, companies: dict[int, dict | int]) -> None:
    """EDGAR ``submissions/CIK##########.json`` by CIK: a submissions document, or an int HTTP error status."""
    for cik, payload in companies.items():
        url = f"{EDGAR_SUBMISSIONS}/CIK{cik:010d}.json"
        if isinstance(payload, int):
            rsps.get(url, status=payload, body="Internal Server Error")
        else:
            rsps.get(url, json=payload)


def rss(items: list[tuple[str, str, str, str]]) -> bytes:
    """An RSS 2.0 document from ``(guid, title, pubDate, description)`` items (the guid is also the link)."""
    body = "".join(f"<item><guid>{escape(guid)}</guid><link>{escape(guid)}</link><title>{escape(title)}</title>"
                   f"<description>{escape(text)}</description><pubDate>{escape(published)}</pubDate></item>"
                   for guid, title, published, text in items)
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>feed</title>'
            f"{body}</channel></rss>").encode()


def register_feeds(rsps, feeds: dict[str, bytes | int]) -> None:
    """Feed URL -> an XML body, or an int HTTP error status."""
    for url, body in feeds.items():
        if isinstance(body, int):
            rsps.get(url, status=body, body="Service Unavailable")
        else:
            rsps.get(url, body=body, content_type="application/rss+xml")
