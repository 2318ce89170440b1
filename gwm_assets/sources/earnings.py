"""SEC EDGAR XBRL company facts: quarterly company fundamentals, one row per reported fact and filing.

Endpoint: ``https://data.sec.gov/api/xbrl/companyfacts/CIK##########.json`` (public domain, no key; the
SEC blocks requests without a descriptive User-Agent that names a contact).

What lands in ``raw_earnings``:

* Forms 10-Q, 10-K, 10-Q/A and 10-K/A only (8-K, S-1, ... are skipped).
* Flow facts (with a ``start``) whose duration is a quarter, 80-100 days; instants (balance-sheet items
  and share counts, ``end`` only). Full-year and year-to-date facts are dropped and nothing is derived
  from them (no Q4 = FY - 9M): a 10-K contributes only the quarter-length facts it tags itself.
  Cash-flow items (capex, operating cash flow) are year-to-date in most 10-Qs, so mostly Q1 survives.
* For each metric the candidate concepts in :data:`CONCEPTS` are tried in priority order *per fact*:
  a lower-priority concept fills only (metric, period_end, accession) slots no earlier concept filled,
  which bridges renames such as SalesRevenueNet -> RevenueFromContractWithCustomerExcludingAssessedTax.
* ``since`` is a watermark on the filing date: facts filed before it are skipped.

New filings: :meth:`EdgarClient.recent_filings` reads ``/submissions/CIK##########.json`` (the
company's filing index), which the ``edgar_filings`` sensor polls to start a refresh when a 10-Q/10-K
is out.

Natural key, :data:`KEY_COLUMNS` = (ticker, metric, period_end, accession). The accession number names
one filing and never changes, so re-fetching the same filing lands on the same keys (idempotent), while a
10-K/A restating a value carries a new accession and becomes a new row beside the original (the vintage
history stays). The same number is repeated in later filings as a comparative; each filing is its own
row. ``duration_days`` is left out of the key: it is NULL for instants (keys must be non-null), and once
only quarter-length flows are kept, a metric's period_end in one filing names a single period. Within one
response an exact repeat of a key (the same fact listed under several frames) is dropped silently; a
repeat with a different value is rejected as a "conflicting duplicate" and the first value is kept.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import pyarrow as pa
import requests

from gwm_assets.sources.base import FetchResult, Reject, SourceError

SOURCE = "earnings"
RAW_TABLE = "raw_earnings"
DEFAULT_USER_AGENT = "gwm research gwm@example.org"
FORMS = frozenset({"10-Q", "10-K", "10-Q/A", "10-K/A"})
QUARTER_DAYS = (80, 100)

FIRMS: dict[str, int] = {
    "AAPL": 320193,
    "MSFT": 789019,
    "NVDA": 1045810,
    "AMZN": 1018724,
    "GOOGL": 1652044,
    "META": 1326801,
    "TSLA": 1318605,
    "JPM": 19617,
    "XOM": 34088,
    "WMT": 104169,
}

# Our metric -> candidate concepts, best first. A bare name is us-gaap; other taxonomies are prefixed.
CONCEPTS: dict[str, tuple[str, ...]] = {
    "revenue": ("Revenues", "RevenueFromContractWithCustomerExcludingAssessedTax", "SalesRevenueNet"),
    "cogs": ("CostOfRevenue", "CostOfGoodsAndServicesSold"),
    "gross_profit": ("GrossProfit",),
    "operating_income": ("OperatingIncomeLoss",),
    "net_income": ("NetIncomeLoss",),
    "cash": ("CashAndCashEquivalentsAtCarryingValue",),
    "total_debt": ("LongTermDebt", "LongTermDebtNoncurrent"),
    "capex": ("PaymentsToAcquirePropertyPlantAndEquipment",),
    "operating_cash_flow": ("NetCashProvidedByUsedInOperatingActivities",),
    "shares_outstanding": ("CommonStockSharesOutstanding", "dei:EntityCommonStockSharesOutstanding"),
}
METRIC_UNITS: dict[str, str] = {"shares_outstanding": "shares"}  # every other metric is in USD

RAW_COLUMNS: dict[str, str] = {
    "ticker": "VARCHAR",
    "cik": "BIGINT",
    "metric": "VARCHAR",
    "concept": "VARCHAR",
    "unit": "VARCHAR",
    "period_start": "DATE",
    "period_end": "DATE",
    "duration_days": "INTEGER",
    "fiscal_year": "INTEGER",
    "fiscal_period": "VARCHAR",
    "form": "VARCHAR",
    "filed": "DATE",
    "accession": "VARCHAR",
    "value": "DOUBLE",
}
KEY_COLUMNS = ("ticker", "metric", "period_end", "accession")
VALUE_COLUMNS = ("value",)

_ARROW_TYPES = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "DATE": pa.date32(), "INTEGER": pa.int32(),
                "DOUBLE": pa.float64()}
ARROW_SCHEMA = pa.schema([(name, _ARROW_TYPES[sql]) for name, sql in RAW_COLUMNS.items()])


def _date(text: object) -> date | None:
    """An ISO date, or None when missing or malformed."""
    if not isinstance(text, str):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _number(val: object) -> float | None:
    """A finite float, or None for None, NaN, infinities, booleans and non-numbers."""
    if isinstance(val, bool) or not isinstance(val, int | float):
        return None
    out = float(val)
    return out if math.isfinite(out) else None


def _entries(facts: Mapping, concept: str, unit: str) -> list:
    taxonomy, _, name = concept.rpartition(":")
    node = (facts.get(taxonomy or "us-gaap") or {}).get(name) or {}
    return (node.get("units") or {}).get(unit) or []


def parse_company_facts(payload: Mapping, ticker: str, cik: int,
                        since: date | None = None) -> tuple[list[dict], list[Reject]]:
    """Rows (RAW_COLUMNS dicts) and rejects from one companyfacts document."""
    facts = payload.get("facts") or {}
    rows: list[dict] = []
    rejects: list[Reject] = []
    eligible = 0
    for metric, candidates in CONCEPTS.items():
        unit = METRIC_UNITS.get(metric, "USD")
        source_key = f"{ticker}:{metric}"
        claimed: set[tuple] = set()  # (period_end, accession) slots filled by a higher-priority concept
        for concept in candidates:
            kept: dict[tuple, dict] = {}
            for fact in _entries(facts, concept, unit):
                if not isinstance(fact, dict) or fact.get("form") not in FORMS:
                    continue
                end, filed, start = _date(fact.get("end")), _date(fact.get("filed")), _date(fact.get("start"))
                bad = [k for k, v in (("end", end), ("filed", filed)) if v is None]
                if fact.get("start") is not None and start is None:
                    bad.append("start")
                if bad:
                    reason = f"{concept}: missing or malformed {' and '.join(bad)} date"
                    rejects.append(Reject(SOURCE, source_key, end, reason, fact))
                    continue
                assert end is not None and filed is not None
                days = (end - start).days if start is not None else None
                if days is not None and not QUARTER_DAYS[0] <= days <= QUARTER_DAYS[1]:
                    continue  # full-year or year-to-date: derive nothing
                eligible += 1
                if since is not None and filed < since:
                    continue
                accession = fact.get("accn")
                value = _number(fact.get("val"))
                if not isinstance(accession, str) or not accession:
                    rejects.append(Reject(SOURCE, source_key, end, f"{concept}: missing accession number", fact))
                    continue
                if value is None:
                    reason = f"{concept}: value {fact.get('val')!r} for {ticker} {metric} {end} is not a number"
                    rejects.append(Reject(SOURCE, source_key, end, reason, fact))
                    continue
                slot = (end, accession)
                if slot in claimed:
                    continue
                if slot in kept:
                    if kept[slot]["value"] != value:
                        reason = (f"conflicting duplicate: {concept} {end} in {accession} is {value!r}, "
                                  f"kept the first value {kept[slot]['value']!r}")
                        rejects.append(Reject(SOURCE, source_key, end, reason, fact))
                    continue
                fy, fp = fact.get("fy"), fact.get("fp")
                kept[slot] = {
                    "ticker": ticker, "cik": cik, "metric": metric, "concept": concept, "unit": unit,
                    "period_start": start, "period_end": end, "duration_days": days,
                    "fiscal_year": fy if isinstance(fy, int) and not isinstance(fy, bool) else None,
                    "fiscal_period": fp if isinstance(fp, str) else None,
                    "form": fact["form"], "filed": filed, "accession": accession, "value": value,
                }
            claimed.update(kept)
            rows.extend(kept.values())
    if not eligible and not rejects:
        name = payload.get("entityName") or f"CIK {cik}"
        raise SourceError(SOURCE, f"no quarterly facts for {name} (CIK {cik}) under any of the concepts "
                                  f"{sorted({c for cs in CONCEPTS.values() for c in cs})}", series=ticker)
    return rows, rejects


def to_table(rows: Sequence[Mapping]) -> pa.Table:
    """Rows -> an Arrow table with exactly RAW_COLUMNS, sorted by key then filing date."""
    ordered = sorted(rows, key=lambda r: (r["ticker"], r["metric"], r["period_end"], r["filed"], r["accession"]))
    return pa.Table.from_pylist(list(ordered), schema=ARROW_SCHEMA)


@dataclass(frozen=True)
class Filing:
    """One filing listed by the submissions endpoint."""

    ticker: str
    cik: int
    accession: str
    form: str
    filed: date
    report_date: date | None


def parse_recent_filings(recent: Mapping, ticker: str, cik: int, forms: frozenset[str] = FORMS) -> list[Filing]:
    """``filings.recent`` of a submissions document (parallel arrays, newest first) -> the filings of
    ``forms``, newest first; entries without an accession number or a valid filing date are skipped."""
    def column(name: str) -> list:
        values = recent.get(name)
        return values if isinstance(values, list) else []

    accessions, kinds, filed_on, reported = (column(n) for n in ("accessionNumber", "form", "filingDate",
                                                                  "reportDate"))
    out = []
    for i, accession in enumerate(accessions):
        form = kinds[i] if i < len(kinds) else None
        filed = _date(filed_on[i]) if i < len(filed_on) else None
        if form not in forms or not isinstance(accession, str) or not accession or filed is None:
            continue
        out.append(Filing(ticker, cik, accession, form, filed, _date(reported[i]) if i < len(reported) else None))
    return sorted(out, key=lambda f: (f.filed, f.accession), reverse=True)


class EdgarClient:
    """Fetches companyfacts per company, politely (User-Agent, at most one request per ``min_interval_s``)."""

    def __init__(self, session: requests.Session | None = None, user_agent: str | None = None,
                 base_url: str = "https://data.sec.gov", timeout: float = 30, min_interval_s: float = 0.12):
        self.session = session if session is not None else requests.Session()
        self.user_agent = user_agent or os.environ.get("SEC_USER_AGENT") or DEFAULT_USER_AGENT
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.min_interval_s = min_interval_s
        self._last_request: float | None = None

    def _throttle(self) -> None:
        if self._last_request is not None:
            wait = self.min_interval_s - (time.monotonic() - self._last_request)
            if wait > 0:
                time.sleep(wait)
        self._last_request = time.monotonic()

    def _get_json(self, url: str, ticker: str, cik: int) -> object:
        """GET one data.sec.gov document politely; SourceError on any HTTP or format problem."""
        hint = f"SEC needs a User-Agent with contact (set SEC_USER_AGENT; sent {self.user_agent!r})"
        self._throttle()
        try:
            resp = self.session.get(url, headers={"User-Agent": self.user_agent, "Accept": "application/json"},
                                    timeout=self.timeout)
        except requests.RequestException as exc:
            raise SourceError(SOURCE, f"request to {url} failed: {exc}", series=ticker) from exc
        if resp.status_code != 200:
            extra = f"; is CIK {cik} right for {ticker}?" if resp.status_code == 404 else ""
            raise SourceError(SOURCE, f"HTTP {resp.status_code} from {url}. Hint: {hint}{extra}", series=ticker)
        try:
            return resp.json()
        except ValueError as exc:
            raise SourceError(SOURCE, f"{url} did not return JSON. Hint: {hint}", series=ticker) from exc

    def company_facts(self, ticker: str, cik: int) -> dict:
        """The raw companyfacts JSON for one company; SourceError on any HTTP or format problem."""
        url = f"{self.base_url}/api/xbrl/companyfacts/CIK{cik:010d}.json"
        payload = self._get_json(url, ticker, cik)
        if not isinstance(payload, dict) or not isinstance(payload.get("facts"), dict):
            raise SourceError(SOURCE, f"{url} returned no 'facts' object", series=ticker)
        return payload

    def recent_filings(self, ticker: str, cik: int, forms: frozenset[str] = FORMS) -> list[Filing]:
        """The company's recent filings of ``forms`` (newest first) from the submissions endpoint
        ``/submissions/CIK##########.json``: cheap to poll, it says when a new 10-Q/10-K is out."""
        url = f"{self.base_url}/submissions/CIK{cik:010d}.json"
        payload = self._get_json(url, ticker, cik)
        recent = (payload.get("filings") or {}).get("recent") if isinstance(payload, dict) else None
        if not isinstance(recent, dict):
            raise SourceError(SOURCE, f"{url} returned no 'filings.recent' object", series=ticker)
        return parse_recent_filings(recent, ticker, cik, forms)

    def fetch(self, tickers: Sequence[str] = tuple(FIRMS), since: date | None = None, *,
              ciks: Mapping[str, int] | None = None) -> FetchResult:
        """One GET per company; ``since`` keeps facts filed on or after it; ``ciks`` adds tickers to FIRMS."""
        known = {**FIRMS, **{t.upper(): int(c) for t, c in (ciks or {}).items()}}
        wanted = list(dict.fromkeys(t.upper() for t in tickers))
        unknown = [t for t in wanted if t not in known]
        if unknown:
            raise SourceError(SOURCE, f"unknown ticker(s) {unknown}: pass ciks={{ticker: cik}} or use one of "
                                      f"{sorted(known)}", series=",".join(unknown))
        rows: list[dict] = []
        rejects: list[Reject] = []
        for ticker in wanted:
            got_rows, got_rejects = parse_company_facts(self.company_facts(ticker, known[ticker]),
                                                        ticker, known[ticker], since)
            rows.extend(got_rows)
            rejects.extend(got_rejects)
        return FetchResult(to_table(rows), rejects)
