"""FRED (St. Louis Fed) through ``fredapi``: observations with their ALFRED vintage dates.

Each row is one value of one series for one observation date *as published on* ``realtime_start``
(a revision is a new row with a later ``realtime_start``). Incremental: a refresh asks only for
observation dates from the series' watermark minus a revision window, with every vintage of them.
Bundled history (no vintage known) sits in the same table with ``realtime_start`` NULL.
"""

from __future__ import annotations

import math
import os
import time
import urllib.error
from collections.abc import Mapping, Sequence
from datetime import date, timedelta

import pyarrow as pa

from gwm_assets.sources.base import FetchResult, Reject, SourceError
from gwm_assets.warehouse.raw_store import RawTableSpec

SOURCE = "fred"
RAW = RawTableSpec(
    name="raw_fred",
    columns={"series_id": "VARCHAR", "date": "DATE", "realtime_start": "DATE", "realtime_end": "DATE",
             "value": "DOUBLE"},
    key=("series_id", "date", "realtime_start"),
    values=("value", "realtime_end"),
)
ARROW_SCHEMA = pa.schema([("series_id", pa.string()), ("date", pa.date32()), ("realtime_start", pa.date32()),
                          ("realtime_end", pa.date32()), ("value", pa.float64())])
ALL_VINTAGES = ("1776-07-04", "9999-12-31")  # FRED's earliest and latest realtime bounds
MISSING = "."  # FRED's marker for "no value on this date"
REQUESTS_PER_MINUTE = 110  # FRED allows 120 requests per minute per key; a catalog of 250 series needs pacing


def _day(text: str | None) -> date | None:
    if not text or text.startswith("9999"):
        return None
    return date.fromisoformat(text)


class FredClient:
    """Fetches observations and vintages of FRED series with a ``fredapi.Fred`` (injectable)."""

    def __init__(self, api_key: str | None = None, fred=None, root_url: str | None = None,
                 requests_per_minute: float | None = None):
        # pacing applies to the real API by default; an injected client (a test's fake) is not paced unless asked
        rate = requests_per_minute if requests_per_minute is not None else (REQUESTS_PER_MINUTE if fred is None else 0)
        self.min_interval_s = 60.0 / rate if rate else 0.0
        self._last_request = float("-inf")
        if fred is None:
            api_key = api_key or os.environ.get("FRED_API_KEY")
            if not api_key:
                raise SourceError(SOURCE, "FRED_API_KEY is not set. Fix: get a free key at "
                                          "https://fred.stlouisfed.org/docs/api/api_key.html and export FRED_API_KEY")
            import fredapi

            fred = fredapi.Fred(api_key=api_key)
        if root_url:  # a mirror or a proxy of the FRED API (and the tutorial test's local fake)
            fred.root_url = root_url.rstrip("/")
        self.fred = fred

    def observations(self, series_id: str, observation_start: date | None):
        """The XML root of ``series/observations`` for every vintage of the requested dates."""
        url = (f"{self.fred.root_url}/series/observations?series_id={series_id}"
               f"&realtime_start={ALL_VINTAGES[0]}&realtime_end={ALL_VINTAGES[1]}")
        if observation_start is not None:
            url += f"&observation_start={observation_start.isoformat()}"
        wait = self._last_request + self.min_interval_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last_request = time.monotonic()
        try:
            return self.fred._Fred__fetch_data(url)  # fredapi's own fetch: urllib + XML, API errors -> ValueError
        except ValueError as exc:
            raise SourceError(SOURCE, f"FRED refused the request: {exc}", series=series_id) from exc
        except urllib.error.URLError as exc:
            raise SourceError(SOURCE, f"cannot reach FRED ({exc.reason})", series=series_id) from exc

    def fetch(self, series_ids: Sequence[str], since: Mapping[str, date | None] | None = None,
              revision_days: int = 90) -> FetchResult:
        """Rows for ``series_ids``; with ``since[series]`` only observation dates from it minus the window."""
        rows: list[dict] = []
        rejects: list[Reject] = []
        for series_id in series_ids:
            last = (since or {}).get(series_id)
            # from the day after the watermark, reaching back `revision_days` for revisions
            start = last + timedelta(days=1 - revision_days) if last is not None else None
            root = self.observations(series_id, start)
            seen: set[tuple] = set()
            for obs in root:
                raw = dict(obs.attrib)
                try:
                    day = _day(raw.get("date"))
                    vintage = _day(raw.get("realtime_start"))
                    vintage_end = _day(raw.get("realtime_end"))
                except ValueError:
                    rejects.append(Reject(SOURCE, series_id, None, f"malformed date in {raw}", raw))
                    continue
                if day is None:
                    rejects.append(Reject(SOURCE, series_id, None, "observation without a date", raw))
                    continue
                text = raw.get("value")
                if text == MISSING:
                    value = None  # kept as NULL: the raw table holds exactly what FRED said
                else:
                    try:
                        value = float(text)
                    except (TypeError, ValueError):
                        rejects.append(Reject(SOURCE, series_id, day, f"non-numeric value {text!r}", raw))
                        continue
                    if not math.isfinite(value):
                        rejects.append(Reject(SOURCE, series_id, day, f"non-finite value {text!r}", raw))
                        continue
                if (day, vintage) in seen:
                    rejects.append(Reject(SOURCE, series_id, day, f"duplicate date {day} for vintage {vintage}", raw))
                    continue
                seen.add((day, vintage))
                rows.append({"series_id": series_id, "date": day, "realtime_start": vintage,
                             "realtime_end": vintage_end, "value": value})
        return FetchResult(pa.Table.from_pylist(rows, schema=ARROW_SCHEMA), rejects)
