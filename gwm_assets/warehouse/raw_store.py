"""Raw tables: exactly what a source returned, upserted by natural key inside the caller's transaction.

Every raw table carries three bookkeeping columns besides the source's own: ``provenance`` (which
``provenance`` row the values came from), ``ingested_at`` (first seen) and ``updated_at`` (last
changed). Keys are matched with ``IS NOT DISTINCT FROM`` so a key column may be NULL (a FRED row
without a vintage date). An upsert never deletes: rows a later fetch does not mention stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa

BOOKKEEPING = {"provenance": "VARCHAR NOT NULL", "ingested_at": "TIMESTAMP NOT NULL",
               "updated_at": "TIMESTAMP NOT NULL"}


@dataclass(frozen=True)
class RawTableSpec:
    """A raw table: its source-native columns (name -> DuckDB type), natural key and value columns."""

    name: str
    columns: dict[str, str]
    key: tuple[str, ...]
    values: tuple[str, ...]

    def __post_init__(self) -> None:
        missing = [c for c in (*self.key, *self.values) if c not in self.columns]
        if missing:
            raise ValueError(f"{self.name}: key/value columns {missing} are not among its columns")

    def ddl(self) -> str:
        cols = [f'"{name}" {kind}' for name, kind in self.columns.items()]
        cols += [f"{name} {kind}" for name, kind in BOOKKEEPING.items()]
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n    " + ",\n    ".join(cols) + "\n)"


@dataclass(frozen=True)
class UpsertCounts:
    fetched: int
    inserted: int
    updated: int

    @property
    def unchanged(self) -> int:
        return self.fetched - self.inserted - self.updated


def _match(spec: RawTableSpec, left: str, right: str, cols) -> str:
    return " AND ".join(f'{left}."{c}" IS NOT DISTINCT FROM {right}."{c}"' for c in cols)


def upsert(conn: duckdb.DuckDBPyConnection, spec: RawTableSpec, rows: pa.Table, provenance: str,
           now: datetime) -> UpsertCounts:
    """Insert new keys, update rows whose values changed, leave the rest untouched.

    Call inside a transaction. ``rows`` must hold the spec's columns; duplicate keys within one
    batch keep their first row.
    """
    conn.execute(spec.ddl())
    if rows.num_rows == 0:
        return UpsertCounts(0, 0, 0)
    missing = [c for c in spec.columns if c not in rows.column_names]
    if missing:
        raise ValueError(f"{spec.name}: incoming rows lack columns {missing}")
    conn.register("upsert_incoming", rows.select(list(spec.columns)))
    try:
        keys = ", ".join(f'"{c}"' for c in spec.key)
        conn.execute(f"""
            CREATE OR REPLACE TEMP TABLE upsert_staged AS
            SELECT * EXCLUDE (_order) FROM (
                SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY _order) AS _rank
                FROM (SELECT *, row_number() OVER () AS _order FROM upsert_incoming)
            ) WHERE _rank = 1""")
        conn.execute("ALTER TABLE upsert_staged DROP COLUMN _rank")
        fetched = conn.execute("SELECT count(*) FROM upsert_staged").fetchone()[0]
        changed = " OR ".join(f't."{c}" IS DISTINCT FROM s."{c}"' for c in spec.values)
        updated = conn.execute(f"""
            SELECT count(*) FROM upsert_staged s JOIN {spec.name} t ON {_match(spec, 't', 's', spec.key)}
            WHERE {changed}""").fetchone()[0]
        assignments = ", ".join(f'"{c}" = s."{c}"' for c in spec.values)
        conn.execute(f"""
            UPDATE {spec.name} AS t SET {assignments}, provenance = ?, updated_at = ?
            FROM upsert_staged s WHERE {_match(spec, 't', 's', spec.key)} AND ({changed})""",
                     [provenance, now])
        columns = ", ".join(f'"{c}"' for c in spec.columns)
        inserted = conn.execute(f"""
            INSERT INTO {spec.name} ({columns}, provenance, ingested_at, updated_at)
            SELECT {columns}, ?, ?, ? FROM upsert_staged s
            WHERE NOT EXISTS (SELECT 1 FROM {spec.name} t WHERE {_match(spec, 't', 's', spec.key)})""",
                                [provenance, now, now]).fetchone()[0]
        conn.execute("DROP TABLE upsert_staged")
    finally:
        conn.unregister("upsert_incoming")
    return UpsertCounts(fetched=fetched, inserted=inserted, updated=updated)


def watermark(conn: duckdb.DuckDBPyConnection, spec: RawTableSpec, column: str, where: str = "",
              params: list | None = None):
    """Latest value of ``column`` in the raw table (None when empty or absent)."""
    conn.execute(spec.ddl())
    clause = f"WHERE {where}" if where else ""
    return conn.execute(f'SELECT max("{column}") FROM {spec.name} {clause}', params or []).fetchone()[0]
