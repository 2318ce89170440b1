"""One refresh of one source: read watermarks, fetch each series, write everything in one transaction.

The network is never touched while the warehouse is open: watermarks are read with a short
connection, series are fetched, then rows, rejects, provenance and the ``refresh_log`` entry land
together. A series whose fetch fails is reported (and recorded) without stopping the others; rows
already stored are never removed or changed by a failure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import pyarrow as pa

from gwm_assets.sources.base import FetchResult, SourceError
from gwm_assets.sources.raw_tables import RAW_SPECS, SERIES, WATERMARKS
from gwm_assets.warehouse.clock import utcnow
from gwm_assets.warehouse.connection import registered, transaction
from gwm_assets.warehouse.ledger import (
    Provenance,
    RefreshEntry,
    ensure_ledger,
    quarantine_rejects,
    record_provenance,
    record_refresh,
    release_fixed,
)
from gwm_assets.warehouse.raw_store import upsert

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]


@dataclass
class RefreshOutcome:
    source: str
    status: str
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: int = 0
    watermark_before: str | None = None
    watermark_after: str | None = None
    errors: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, object]:
        return {"status": self.status, "rows_fetched": self.fetched, "rows_inserted": self.inserted,
                "rows_updated": self.updated, "rows_quarantined": self.rejected,
                "watermark_before": self.watermark_before or "", "watermark_after": self.watermark_after or "",
                "errors": "\n".join(self.errors)}


def read_watermarks(conn: duckdb.DuckDBPyConnection, source: str) -> dict[str, object]:
    spec = RAW_SPECS[source]
    key, column = WATERMARKS[source]
    conn.execute(spec.ddl())
    return dict(conn.execute(f'SELECT "{key}", max("{column}") FROM {spec.name} GROUP BY 1').fetchall())


def _overall(conn: duckdb.DuckDBPyConnection, source: str) -> str | None:
    spec = RAW_SPECS[source]
    value = conn.execute(f'SELECT max("{WATERMARKS[source][1]}") FROM {spec.name}').fetchone()[0]
    return str(value) if value is not None else None


def _holds(conn: duckdb.DuckDBPyConnection, check: str, source: str) -> bool:
    """Whether ``quarantine`` holds unreleased rows of ``check`` for ``source``."""
    return conn.execute("SELECT count(*) > 0 FROM quarantine WHERE released_at IS NULL AND check_name = ? "
                        "AND source = ?", [check, source]).fetchone()[0]


def write_batch(conn: duckdb.DuckDBPyConnection, source: str, results: Sequence[FetchResult],
                provenance: Provenance | Sequence[Provenance], run_id: str, now: datetime) -> tuple[int, int, int, int]:
    """Upsert rows and quarantine rejects of several fetches in one statement per raw table.

    ``provenance`` is one origin for all results or one per result. Call inside a transaction.
    """
    spec = RAW_SPECS[source]
    origins = [provenance] * len(results) if isinstance(provenance, Provenance) else list(provenance)
    ensure_ledger(conn)
    record_provenance(conn, {p.provenance_id: p for p in origins}.values(), now)
    tables = [r.table.select(list(spec.columns)).append_column(
                  "provenance", pa.repeat(pa.scalar(p.provenance_id, pa.string()), r.num_rows))
              for r, p in zip(results, origins, strict=True) if r.num_rows]
    incoming = pa.concat_tables(tables) if tables else None
    counts = upsert(conn, spec, incoming, now) if incoming is not None else None
    rejects = [x for r in results for x in r.rejects]
    check = f"{source}.parse"
    if incoming is not None and spec.name in SERIES and _holds(conn, check, source):
        # input fixed since an earlier run: release its held rows (nothing held: nothing to look up)
        _, key, ts = SERIES[spec.name]
        with registered(conn, "incoming_batch", incoming):
            valid = conn.sql(f"SELECT DISTINCT {key} AS source_key, CAST({ts} AS VARCHAR) AS ts "
                             "FROM incoming_batch").to_arrow_table()
        release_fixed(conn, check, source, valid, rejects, run_id, now)
    rejected = quarantine_rejects(conn, rejects, run_id, check, now)
    if counts is None:
        conn.execute(spec.ddl())
        return 0, 0, 0, rejected
    return counts.fetched, counts.inserted, counts.updated, rejected


def refresh(connect: Connect, source: str, keys: Sequence[str], fetch_one: Callable[[str, object], FetchResult],
            provenance: Provenance, run_id: str, since_note: str = "watermark") -> RefreshOutcome:
    """Fetch ``keys`` from their watermarks and store the results (see the module docstring)."""
    started = utcnow()
    with connect() as conn:
        with transaction(conn):
            ensure_ledger(conn)
            marks = read_watermarks(conn, source)
            before = _overall(conn, source)
    results, errors = [], []
    for key in keys:
        try:
            results.append(fetch_one(key, marks.get(key)))
        except SourceError as exc:
            errors.append(str(exc))
    now = utcnow()
    with connect() as conn:
        with transaction(conn):
            fetched, inserted, updated, rejected = write_batch(conn, source, results, provenance, run_id, now)
            after = _overall(conn, source)
            status = "ok" if not errors else ("failed" if not results else "partial")
            record_refresh(conn, RefreshEntry(
                run_id=run_id, source=source, raw_table=RAW_SPECS[source].name, status=status, started_at=started,
                finished_at=utcnow(), fetched_since=since_note, rows_fetched=fetched, rows_inserted=inserted,
                rows_updated=updated, rows_rejected=rejected, watermark_before=before, watermark_after=after,
                message="; ".join(errors) or None))
    return RefreshOutcome(source, status, fetched, inserted, updated, rejected, before, after, errors)


def record_skip(connect: Connect, source: str, run_id: str, reason: str) -> RefreshOutcome:
    """A live source that did not run (no key, offline): say so in ``refresh_log``."""
    now = utcnow()
    with connect() as conn:
        with transaction(conn):
            conn.execute(RAW_SPECS[source].ddl())
            mark = _overall(conn, source)
            record_refresh(conn, RefreshEntry(run_id, source, RAW_SPECS[source].name, "skipped", now, now, None,
                                              0, 0, 0, 0, mark, mark, reason))
    return RefreshOutcome(source, "skipped", watermark_before=mark, watermark_after=mark, errors=[reason])
