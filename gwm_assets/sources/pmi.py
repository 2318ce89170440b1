"""ISM purchasing managers' indices (Report on Business), as republished by DBnomics.

One GET per series id ``PROVIDER/DATASET/SERIES`` against
``{base_url}/series/{id}?observations=1&format=json``. DBnomics gives no per-value release date, so
``released_at`` comes from ISM's publication calendar (see :func:`release_date_for`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pyarrow as pa
import requests

from gwm_assets.sources.base import FetchResult, Reject, SourceError

SOURCE = "pmi"
RAW_TABLE = "raw_pmi"

DEFAULT_SERIES: tuple[str, ...] = (
    "ISM/pmi/pm",  # ISM Manufacturing PMI, headline index
    "ISM/neword/in",  # ISM Manufacturing New Orders index
    "ISM/nm-pmi/pm",  # ISM Services PMI (formerly Non-Manufacturing NMI), headline index
)

RAW_COLUMNS: dict[str, str] = {
    "provider": "VARCHAR",  # DBnomics provider code, e.g. ISM
    "dataset": "VARCHAR",  # DBnomics dataset code, e.g. pmi
    "series_code": "VARCHAR",  # full id, e.g. ISM/pmi/pm
    "series_name": "VARCHAR",
    "period": "DATE",  # first day of the reference month
    "value": "DOUBLE",
    "released_at": "TIMESTAMP",  # naive UTC, estimated from release_rule
    "release_rule": "VARCHAR",  # how released_at was derived
}
# Every distinct value published for a month is its own row (a vintage): a revision inserts a row beside
# the first release instead of overwriting it; `observations` takes the first seen as `value`.
KEY_COLUMNS = ("series_code", "period", "value")
VALUE_COLUMNS = ("released_at", "release_rule", "series_name")

_ARROW_TYPES = {"VARCHAR": pa.string(), "DATE": pa.date32(), "DOUBLE": pa.float64(), "TIMESTAMP": pa.timestamp("us")}
ARROW_SCHEMA = pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in RAW_COLUMNS.items()])

USER_AGENT = "gwm-assets/0.1 (economic world-model feature store; DBnomics ISM PMI fetcher)"
_EASTERN = ZoneInfo("America/New_York")
_RELEASE_TIME = time(10, 0)  # ISM publishes at 10:00 Eastern
_PERIOD = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?$")

# Release rule. ISM publishes the Manufacturing report on the first business day of the month after
# the reference month, and the Services (dataset codes "nm-...") report on the third business day,
# both at 10:00 ET. Business days are Mon-Fri less the US holidays that fall in a month's first days
# (New Year's Day, Independence Day, Labor Day, with weekend observance). In January ISM has published
# one business day later (e.g. Dec 2023 PMI on Wed 2024-01-03), so January counts one extra day; the
# estimate errs late, never early, so no value looks available before it was. 10:00 ET is converted
# to naive UTC with DST: 15:00 UTC in winter, 14:00 UTC in summer.
RELEASE_RULES = {1: "first business day of next month 10:00 ET", 3: "third business day of next month 10:00 ET"}


def _is_holiday(day: date) -> bool:
    """US federal holidays that can land on a month's first business days (with observance)."""
    md, wd = (day.month, day.day), day.weekday()
    if md == (1, 1) or (md == (1, 2) and wd == 0) or (md == (12, 31) and wd == 4):
        return True
    if md == (7, 4) or (md == (7, 3) and wd == 4) or (md == (7, 5) and wd == 0):
        return True
    return day.month == 9 and wd == 0 and day.day <= 7  # Labor Day: first Monday of September


def _is_business_day(day: date) -> bool:
    return day.weekday() < 5 and not _is_holiday(day)


def release_date_for(period: date, business_day: int = 1) -> datetime:
    """When ISM published the value for ``period``'s month: the ``business_day``-th business day of the
    next month (plus one in January) at 10:00 ET, as naive UTC."""
    if business_day < 1:
        raise ValueError(f"business_day must be >= 1, got {business_day}")
    day = date(period.year + period.month // 12, period.month % 12 + 1, 1)
    needed = business_day + (1 if day.month == 1 else 0)
    while True:
        if _is_business_day(day):
            needed -= 1
            if needed == 0:
                break
        day += timedelta(days=1)
    local = datetime.combine(day, _RELEASE_TIME, tzinfo=_EASTERN)
    return local.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)


def _business_day_for(dataset: str) -> int:
    return 3 if dataset.lower().startswith("nm-") else 1


def _parse_period(text: object) -> date | None:
    """``"2024-01"`` (or ``"2024-01-01"``) -> 2024-01-01; None when it is not a valid month."""
    match = _PERIOD.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3] or 1)).replace(day=1)
    except ValueError:
        return None


def _parse_value(value: object) -> tuple[float | None, str]:
    """A finite float, or None and the reason it is not one."""
    if isinstance(value, bool) or value is None:
        return None, f"non-numeric value {value!r}"
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None, f"non-numeric value {value!r}"
    if not math.isfinite(number):
        return None, f"non-finite value {value!r}"
    return number, ""


class PMIClient:
    """Fetches ISM PMI series from the DBnomics API into :data:`RAW_COLUMNS`."""

    def __init__(self, session: requests.Session | None = None, base_url: str = "https://api.db.nomics.world/v22",
                 timeout: float = 30):
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def fetch(self, series: Sequence[str] = DEFAULT_SERIES, since: date | None = None) -> FetchResult:
        """Fetch every series; keep months with period >= ``since``; reject unusable observations."""
        if isinstance(series, str):
            series = (series,)
        rows: dict[str, list] = {name: [] for name in RAW_COLUMNS}
        rejects: list[Reject] = []
        for series_id in series:
            self._fetch_one(series_id, since, rows, rejects)
        return FetchResult(table=pa.table(rows, schema=ARROW_SCHEMA), rejects=rejects)

    def _get_doc(self, series_id: str) -> dict:
        url = f"{self.base_url}/series/{series_id}"
        try:
            resp = self.session.get(url, params={"observations": "1", "format": "json"}, timeout=self.timeout)
        except requests.RequestException as exc:
            raise SourceError(SOURCE, f"request to {url} failed: {exc}", series=series_id) from exc
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("message")
            except (ValueError, AttributeError):
                detail = None
            detail = detail or resp.text[:200].strip() or resp.reason
            raise SourceError(SOURCE, f"HTTP {resp.status_code} from {resp.url}: {detail}", series=series_id)
        try:
            payload = resp.json()
        except ValueError as exc:
            raise SourceError(SOURCE, f"response from {resp.url} is not JSON", series=series_id) from exc
        docs = (payload.get("series") or {}).get("docs") if isinstance(payload, dict) else None
        if not docs or not isinstance(docs[0], dict):
            raise SourceError(SOURCE, f"no observations returned by {resp.url} (no series docs)", series=series_id)
        return docs[0]

    def _fetch_one(self, series_id: str, since: date | None, rows: dict[str, list], rejects: list[Reject]) -> None:
        parts = series_id.split("/")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"series id must look like PROVIDER/DATASET/SERIES, got {series_id!r}")
        doc = self._get_doc(series_id)
        periods = doc.get("period") or doc.get("period_start_day") or []
        values = doc.get("value") or []
        if not periods or not values:
            raise SourceError(SOURCE, "no observations returned (empty period/value lists)", series=series_id)
        if len(periods) != len(values):
            raise SourceError(SOURCE, f"period and value lists differ in length ({len(periods)} vs {len(values)})",
                              series=series_id)
        frequency = doc.get("@frequency")
        if frequency not in (None, "monthly"):
            raise SourceError(SOURCE, f"expected a monthly series, got frequency {frequency!r}", series=series_id)
        provider = doc.get("provider_code") or parts[0]
        dataset = doc.get("dataset_code") or parts[1]
        business_day = _business_day_for(dataset)
        rule = RELEASE_RULES.get(business_day, f"business day {business_day} of next month 10:00 ET")
        seen: set[date] = set()
        for raw_period, raw_value in zip(periods, values, strict=True):
            raw = {"series": series_id, "period": raw_period, "value": raw_value}
            period = _parse_period(raw_period)
            if period is None:
                rejects.append(Reject(SOURCE, series_id, None, f"malformed period {raw_period!r}", raw))
                continue
            if since is not None and period < since:
                continue
            if period in seen:
                rejects.append(Reject(SOURCE, series_id, period, "duplicate period", raw))
                continue
            seen.add(period)
            value, reason = _parse_value(raw_value)
            if value is None:
                rejects.append(Reject(SOURCE, series_id, period, reason, raw))
                continue
            for name, item in (("provider", provider), ("dataset", dataset), ("series_code", series_id),
                               ("series_name", doc.get("series_name")), ("period", period), ("value", value),
                               ("released_at", release_date_for(period, business_day)), ("release_rule", rule)):
                rows[name].append(item)
