"""Yahoo Finance through ``yfinance``: daily OHLCV with raw and adjusted close, per ticker.

The HTTP session is injectable (tests pass a plain ``requests.Session`` that ``responses``
intercepts). yfinance answers an empty frame instead of raising when offline or for an unknown
ticker; that is an error here, naming the ticker.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, timedelta

import pyarrow as pa

from gwm_assets.sources.base import FetchResult, Reject, SourceError
from gwm_assets.warehouse.raw_store import RawTableSpec

SOURCE = "yahoo"
PRICE_COLUMNS = {"open": "Open", "high": "High", "low": "Low", "close": "Close", "adj_close": "Adj Close",
                 "volume": "Volume"}
RAW = RawTableSpec(
    name="raw_yahoo",
    columns={"ticker": "VARCHAR", "date": "DATE", "open": "DOUBLE", "high": "DOUBLE", "low": "DOUBLE",
             "close": "DOUBLE", "adj_close": "DOUBLE", "volume": "DOUBLE"},
    key=("ticker", "date"),
    values=("open", "high", "low", "close", "adj_close", "volume"),
)
ARROW_SCHEMA = pa.schema([("ticker", pa.string()), ("date", pa.date32())]
                         + [(c, pa.float64()) for c in PRICE_COLUMNS])


class YahooClient:
    def __init__(self, session=None, cache_dir: str | None = None):
        import yfinance as yf

        if cache_dir:
            yf.set_tz_cache_location(cache_dir)  # keep yfinance's sqlite caches out of ~/.cache
        self.yf = yf
        self.session = session

    def history(self, ticker: str, start: date | None, end: date | None):
        kwargs = {"auto_adjust": False, "actions": False}
        if start is None:
            kwargs["period"] = "max"
        else:
            kwargs["start"] = start.isoformat()
            if end is not None:
                kwargs["end"] = (end + timedelta(days=1)).isoformat()
        try:
            frame = self.yf.Ticker(ticker, session=self.session).history(**kwargs)
        except Exception as exc:  # yfinance raises its own and transport errors alike
            raise SourceError(SOURCE, f"download failed: {exc}", series=ticker) from exc
        if frame is None or frame.empty:
            raise SourceError(SOURCE, "no rows returned (yfinance gives an empty table when offline or for an "
                                      "unknown ticker)", series=ticker)
        return frame

    def fetch(self, tickers: Sequence[str], since: Mapping[str, date | None] | None = None,
              revision_days: int = 5, end: date | None = None) -> FetchResult:
        rows: list[dict] = []
        rejects: list[Reject] = []
        for ticker in tickers:
            last = (since or {}).get(ticker)
            start = last + timedelta(days=1 - revision_days) if last is not None else None
            frame = self.history(ticker, start, end)
            seen: set[date] = set()
            for stamp, record in frame.iterrows():
                day = stamp.date()
                raw = {k: record.get(v) for k, v in PRICE_COLUMNS.items()}
                if day in seen:
                    rejects.append(Reject(SOURCE, ticker, day, f"duplicate date {day}", raw))
                    continue
                bad = [k for k in ("close", "adj_close") if not _finite(raw[k])]
                if bad:
                    rejects.append(Reject(SOURCE, ticker, day, f"non-numeric {'/'.join(bad)}: {raw}", raw))
                    continue
                seen.add(day)
                rows.append({"ticker": ticker, "date": day,
                             **{k: (float(v) if _finite(v) else None) for k, v in raw.items()}})
        return FetchResult(pa.Table.from_pylist(rows, schema=ARROW_SCHEMA), rejects)


def _finite(value) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
