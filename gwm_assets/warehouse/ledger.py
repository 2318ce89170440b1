"""Where rows came from and what each refresh did: ``provenance``, ``refresh_log`` and ``quarantine``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime

import duckdb
import pyarrow as pa

from gwm_assets.warehouse.connection import registered


@dataclass(frozen=True)
class Reject:
    """One input row that could not be accepted, and why."""

    source: str
    source_key: str
    ts: date | datetime | None
    reason: str
    raw: dict = field(default_factory=dict)

    def as_row(self) -> dict[str, object]:
        ts = self.ts.isoformat() if self.ts is not None else None
        return {"source": self.source, "source_key": self.source_key, "ts": ts, "reason": self.reason,
                "raw": json.dumps(self.raw, default=str, sort_keys=True)}


LEDGER_DDL = (
    """CREATE TABLE IF NOT EXISTS provenance (
        provenance_id VARCHAR PRIMARY KEY,
        source        VARCHAR NOT NULL,
        package       VARCHAR,
        version       VARCHAR,
        item          VARCHAR NOT NULL,
        stated_origin VARCHAR NOT NULL,
        licence       VARCHAR NOT NULL,
        synthetic     BOOLEAN NOT NULL,
        url           VARCHAR,
        recorded_at   TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS refresh_log (
        run_id           VARCHAR NOT NULL,
        source           VARCHAR NOT NULL,
        raw_table        VARCHAR NOT NULL,
        status           VARCHAR NOT NULL,
        started_at       TIMESTAMP NOT NULL,
        finished_at      TIMESTAMP NOT NULL,
        fetched_since    VARCHAR,
        rows_fetched     BIGINT NOT NULL,
        rows_inserted    BIGINT NOT NULL,
        rows_updated     BIGINT NOT NULL,
        rows_rejected    BIGINT NOT NULL,
        watermark_before VARCHAR,
        watermark_after  VARCHAR,
        message          VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS quarantine (
        quarantined_at TIMESTAMP NOT NULL,
        run_id         VARCHAR NOT NULL,
        source         VARCHAR NOT NULL,
        source_key     VARCHAR NOT NULL,
        ts             VARCHAR,
        check_name     VARCHAR NOT NULL,
        reason         VARCHAR NOT NULL,
        raw            VARCHAR NOT NULL
    )""",
    # added with the observations checks: which field a rejected observation was for, and its release
    "ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS field_path VARCHAR",
    "ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS released_at TIMESTAMP",
    "ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS released_run_id VARCHAR",
)


@dataclass(frozen=True)
class Provenance:
    """One origin of raw rows: a package item (bundled) or a live API."""

    provenance_id: str
    source: str
    item: str
    stated_origin: str
    licence: str
    synthetic: bool = False
    package: str | None = None
    version: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class RefreshEntry:
    run_id: str
    source: str
    raw_table: str
    status: str
    started_at: datetime
    finished_at: datetime
    fetched_since: str | None
    rows_fetched: int
    rows_inserted: int
    rows_updated: int
    rows_rejected: int
    watermark_before: str | None
    watermark_after: str | None
    message: str | None = None


def ensure_ledger(conn: duckdb.DuckDBPyConnection) -> None:
    for ddl in LEDGER_DDL:
        conn.execute(ddl)


def record_provenance(conn: duckdb.DuckDBPyConnection, entries: Iterable[Provenance], now: datetime) -> None:
    """Insert new provenance rows and refresh changed ones; the first ``recorded_at`` is kept.

    The ledger tables must exist (:func:`ensure_ledger`)."""
    wanted = {p.provenance_id: asdict(p) for p in entries}
    if not wanted:
        return
    cols = list(next(iter(wanted.values())))
    stored = {row[0]: dict(zip(cols, row, strict=True)) for row in conn.execute(
        f"SELECT {', '.join(cols)} FROM provenance WHERE provenance_id IN (SELECT unnest(?))",
        [list(wanted)]).fetchall()}
    for pid, row in wanted.items():
        if pid not in stored:
            conn.execute(f"INSERT INTO provenance ({', '.join(cols)}, recorded_at) "
                         f"VALUES ({', '.join('?' * len(cols))}, ?)", [row[c] for c in cols] + [now])
        elif stored[pid] != row:
            changed = [c for c in cols if c != "provenance_id"]
            conn.execute(f"UPDATE provenance SET {', '.join(f'{c} = ?' for c in changed)} WHERE provenance_id = ?",
                         [row[c] for c in changed] + [pid])


def record_refresh(conn: duckdb.DuckDBPyConnection, entry: RefreshEntry) -> None:
    ensure_ledger(conn)
    row = asdict(entry)
    conn.execute(f"INSERT INTO refresh_log ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                 list(row.values()))


def quarantine_rejects(conn: duckdb.DuckDBPyConnection, rejects: Iterable[Reject], run_id: str, check_name: str,
                       now: datetime) -> int:
    """Store rejected input rows with their reason; returns how many were newly stored."""
    rows = [dict(r.as_row(), run_id=run_id, check_name=check_name, quarantined_at=now) for r in rejects]
    if not rows:
        return 0
    ensure_ledger(conn)
    table = pa.Table.from_pylist(rows)
    with registered(conn, "incoming_rejects", table):
        # a row still held for the same reason is not added twice (re-fetching unfixed input)
        return conn.execute("""
            INSERT INTO quarantine (quarantined_at, run_id, source, source_key, ts, check_name, reason, raw)
            SELECT quarantined_at, run_id, source, source_key, ts, check_name, reason, raw FROM incoming_rejects i
            WHERE NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.released_at IS NULL AND q.source = i.source
                              AND q.source_key = i.source_key AND q.ts IS NOT DISTINCT FROM i.ts
                              AND q.check_name = i.check_name AND q.reason = i.reason)""").fetchone()[0]


def release_fixed(conn: duckdb.DuckDBPyConnection, check_name: str, source: str, valid_keys: pa.Table,
                  still_rejected: Iterable[Reject], run_id: str, now: datetime) -> int:
    """Release held entries of ``check_name`` whose (source_key, ts) now arrived as a valid row.

    ``valid_keys`` has text columns source_key and ts. An entry the same input still rejects for the
    same reason (a duplicate date beside its valid first row) stays held. Returns how many were released;
    a released entry keeps its row, with ``released_at`` and ``released_run_id``. The ledger tables
    must exist (:func:`ensure_ledger`).
    """
    held = pa.Table.from_pylist([r.as_row() for r in still_rejected],
                                schema=pa.schema([("source", pa.string()), ("source_key", pa.string()),
                                                  ("ts", pa.string()), ("reason", pa.string()), ("raw", pa.string())]))
    with registered(conn, "incoming_valid_keys", valid_keys), registered(conn, "incoming_still_held", held):
        return conn.execute("""
            UPDATE quarantine q SET released_at = ?, released_run_id = ?
            WHERE q.released_at IS NULL AND q.check_name = ? AND q.source = ?
              AND EXISTS (SELECT 1 FROM incoming_valid_keys k WHERE k.source_key = q.source_key AND k.ts = q.ts)
              AND NOT EXISTS (SELECT 1 FROM incoming_still_held h WHERE h.source_key = q.source_key
                              AND h.ts IS NOT DISTINCT FROM q.ts AND h.reason = q.reason)""",
                            [now, run_id, check_name, source]).fetchone()[0]
