"""The warehouse's forecast tables: ``forecasts`` (each node's current rows) and ``forecast_history`` (every row
any checkpoint ever wrote).

One row per node, kind (``live``: from the newest data; ``backtest``: from a past origin of the test
period), field, origin (``as_of``) and horizon: the model's ``mean``, ``std`` and 90% interval
(``q05``, ``q95``), the ``naive`` forecast from the same information (by ``naive_method``), the
step of the field's last value published by the origin (``last_observed``: a forecast far from it
extrapolates over a gap), the field's ``unit`` and ``transform``, and the ``checkpoint_sha`` and
``data_version`` that produced it.
``target_ts`` is the first day of the target canvas step and ``target_end`` the day after its last,
so the actual is the last observation in ``[target_ts, target_end)`` (the canvas's rule):
``ASOF JOIN observations o ON o.field_path = f.field_path AND o.ts < f.target_end``.

Every node's rows are replaced in one transaction: ``forecasts`` holds exactly one checkpoint's rows per
node, and ``forecast_history`` keeps the rows of every (checkpoint, data version) it was given, so an
older checkpoint's forecasts stay queryable by its sha. Writing the same checkpoint and data twice
writes the same rows (the history's rows are reused, not recomputed).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

COLUMNS = ("node", "kind", "field_path", "as_of", "target_ts", "target_end", "horizon", "mean", "std", "q05", "q95",
           "naive", "naive_method", "last_observed", "unit", "transform", "checkpoint_sha", "data_version",
           "created_at")
_TYPES = """node VARCHAR NOT NULL, kind VARCHAR NOT NULL, field_path VARCHAR NOT NULL, as_of TIMESTAMP NOT NULL,
    target_ts DATE NOT NULL, target_end DATE NOT NULL, horizon INTEGER NOT NULL, mean DOUBLE, std DOUBLE,
    q05 DOUBLE, q95 DOUBLE, naive DOUBLE, naive_method VARCHAR, last_observed DATE, unit VARCHAR, transform VARCHAR,
    checkpoint_sha VARCHAR NOT NULL, data_version VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL"""
FORECASTS_DDL = f"""CREATE TABLE IF NOT EXISTS forecasts ({_TYPES},
    PRIMARY KEY (node, kind, field_path, as_of, horizon))"""
HISTORY_DDL = f"""CREATE TABLE IF NOT EXISTS forecast_history ({_TYPES},
    PRIMARY KEY (node, checkpoint_sha, data_version, kind, field_path, as_of, horizon))"""
KINDS = ("live", "backtest")


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(FORECASTS_DDL)
    conn.execute(HISTORY_DDL)


def stored_rows(conn: duckdb.DuckDBPyConnection, node: str, checkpoint_sha: str, data_version: str) -> int:
    """How many history rows this node's checkpoint already has on this data (0: not forecast yet); reads only."""
    exists = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'forecast_history'"
                          ).fetchone()[0]
    if not exists:
        return 0
    return int(conn.execute("SELECT count(*) FROM forecast_history WHERE node = ? AND checkpoint_sha = ? AND "
                            "data_version = ?", [node, checkpoint_sha, data_version]).fetchone()[0])


def node_data_version(conn: duckdb.DuckDBPyConnection, paths: tuple[str, ...]) -> tuple[str, int]:
    """A hash of the observations of ``paths`` (what a forecast of them reads) and their number."""
    digest, n = conn.execute(
        """SELECT coalesce(md5(string_agg(field_path || '|' || ts || '|' || available_at || '|' || value || '|'
                                          || coalesce(md5(CAST(vector AS VARCHAR)), ''), ','
                                          ORDER BY field_path, ts, source)), ''), count(*)
           FROM observations WHERE list_contains(?, field_path)""", [list(paths)]).fetchone()
    return digest[:16], int(n)


def check_rows(node: str, frame: pd.DataFrame) -> None:
    """Refuse rows that would break the tables' promises, before anything is written."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"forecasts of node {node} lack column(s) {missing}")
    bad_kind = sorted(set(frame["kind"]) - set(KINDS))
    if bad_kind:
        raise ValueError(f"forecasts of node {node} have unknown kind(s) {bad_kind}; kinds are {KINDS}")
    if (frame["node"] != node).any():
        raise ValueError(f"forecasts written for node {node} hold rows of {sorted(set(frame['node']) - {node})}")
    if frame.duplicated(["kind", "field_path", "as_of", "horizon"]).any():
        row = frame[frame.duplicated(["kind", "field_path", "as_of", "horizon"], keep=False)].iloc[0]
        raise ValueError(f"forecasts of node {node} repeat ({row['kind']}, {row['field_path']}, {row['as_of']}, "
                         f"horizon {row['horizon']})")


def replace_node_forecasts(conn: duckdb.DuckDBPyConnection, node: str, checkpoint_sha: str, data_version: str,
                           frame: pd.DataFrame | None, now: dt.datetime) -> int:
    """Add ``frame`` (None: reuse the history's rows of this checkpoint and data) to ``forecast_history`` and
    make them the node's rows in ``forecasts``; returns the node's row count. Call inside a transaction
    (:func:`gwm_assets.warehouse.connection.transaction`, after :func:`ensure_tables`): the asset writes
    every node's rows in one."""
    key = [node, checkpoint_sha, data_version]
    if frame is not None:
        frame = frame.assign(node=node, checkpoint_sha=checkpoint_sha, data_version=data_version, created_at=now)
        check_rows(node, frame)
        conn.register("incoming_forecasts", frame[list(COLUMNS)])
        try:
            conn.execute("DELETE FROM forecast_history WHERE node = ? AND checkpoint_sha = ? AND data_version = ?", key)
            conn.execute(f"INSERT INTO forecast_history SELECT {', '.join(COLUMNS)} FROM incoming_forecasts")
        finally:
            conn.unregister("incoming_forecasts")
    conn.execute("DELETE FROM forecasts WHERE node = ?", [node])
    conn.execute(f"INSERT INTO forecasts SELECT {', '.join(COLUMNS)} FROM forecast_history "
                 "WHERE node = ? AND checkpoint_sha = ? AND data_version = ?", key)
    (rows,) = conn.execute("SELECT count(*) FROM forecasts WHERE node = ?", [node]).fetchone()
    return int(rows)


def drop_node_forecasts(conn: duckdb.DuckDBPyConnection, node: str) -> None:
    """The node has no current checkpoint (or nothing to forecast): it has no current rows (history stays)."""
    conn.execute("DELETE FROM forecasts WHERE node = ?", [node])
