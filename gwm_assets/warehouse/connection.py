"""Short-lived DuckDB connections that wait for the file lock instead of failing, and transactions.

DuckDB lets one process write a file, or many processes read it, never both. A materialization
holds the write lock for seconds; a reader (``gwm sql``) or a second writer retries with backoff
until the lock is free or ``timeout_s`` passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from gwm_assets.warehouse.errors import WarehouseBusy, WarehouseMissing

LOCK_MARKERS = ("could not set lock", "conflicting lock", "database is locked")


def is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.Error) and any(m in str(exc).lower() for m in LOCK_MARKERS)


def connect(path: str | Path, read_only: bool = False, timeout_s: float = 120.0,
            on_wait: Callable[[float, BaseException], None] | None = None) -> duckdb.DuckDBPyConnection:
    """Open ``path``; while another process holds the lock, wait (0.05 s doubling to 2 s) and retry."""
    path = Path(path)
    if read_only and not path.exists():
        raise WarehouseMissing(f"no warehouse at {path}. Fix: run `make run` (or materialize the assets) first")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            if not is_lock_error(exc):
                raise
            waited = time.monotonic() - start
            if waited >= timeout_s:
                raise WarehouseBusy(
                    f"the warehouse {path} stayed locked by another process for {waited:.0f} s "
                    f"({exc}). Fix: wait for the running materialization to finish, or raise the timeout"
                ) from exc
            if on_wait is not None:
                on_wait(waited, exc)
            time.sleep(min(delay, max(0.0, timeout_s - waited)))
            delay = min(delay * 2, 2.0)


@contextmanager
def open_warehouse(path: str | Path, read_only: bool = False, timeout_s: float = 120.0,
                   on_wait: Callable[[float, BaseException], None] | None = None,
                   parquet_dir: str | Path | None = None,
                   on_publish: Callable[[object], None] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection that is closed (and its lock released) when the block ends.

    With ``parquet_dir`` (``GWM_WAREHOUSE_PARQUET``), a read-only connection reads the Parquet export there
    (an in-memory DuckDB with one view per table; the DuckDB file is not opened), and a writer, when its
    block ends without an error, publishes the changed tables there before it releases the file
    (``on_publish`` receives the ``ExportReport``). See ``gwm_assets.warehouse.parquet``.
    """
    if parquet_dir is not None and read_only:
        from gwm_assets.warehouse.parquet import open_parquet_warehouse

        conn = open_parquet_warehouse(parquet_dir)
        try:
            yield conn
        finally:
            conn.close()
        return
    conn = connect(path, read_only=read_only, timeout_s=timeout_s, on_wait=on_wait)
    try:
        yield conn
        if parquet_dir is not None:
            from gwm_assets.warehouse.parquet import export_warehouse

            report = export_warehouse(conn, parquet_dir)
            if on_publish is not None:
                on_publish(report)
    finally:
        conn.close()


@contextmanager
def registered(conn: duckdb.DuckDBPyConnection, name: str, table) -> Iterator[str]:
    """Expose an Arrow table to SQL as ``name`` for the length of the block."""
    conn.register(name, table)
    try:
        yield name
    finally:
        conn.unregister(name)


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All statements in the block land together or not at all."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
