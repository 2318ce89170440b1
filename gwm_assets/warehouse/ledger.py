"""Where rows came from and what each refresh did: ``provenance``, ``refresh_log`` and ``quarantine``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime

import duckdb
import pyarrow as pa

from gwm_assets.sources.base import Reject
from gwm_assets.warehouse.connection import registered

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
    """Store rejected input rows with their reason; returns how many were stored."""
    rows = [dict(r.as_row(), run_id=run_id, check_name=check_name, quarantined_at=now) for r in rejects]
    if not rows:
        return 0
    ensure_ledger(conn)
    table = pa.Table.from_pylist(rows)
    with registered(conn, "incoming_rejects", table):
        conn.execute("""INSERT INTO quarantine (quarantined_at, run_id, source, source_key, ts, check_name, reason, raw)
                        SELECT quarantined_at, run_id, source, source_key, ts, check_name, reason, raw
                        FROM incoming_rejects""")
    return len(rows)
