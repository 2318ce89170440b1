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

from gwm_assets.warehouse.connection import registered

BOOKKEEPING = {"provenance": "VARCHAR NOT NULL", "ingested_at": "TIMESTAMP NOT NULL",
               "updated_at": "TIMESTAMP NOT NULL"}


@dataclass(frozen=True)
class RawTableSpec:
    """A raw table: its source-native columns (name -> DuckDB type), natural key and value columns.

    ``derived`` columns are computed from the values (a headline's embedding): rewritten whenever a
    value changes, never compared themselves (recomputing them need not give identical bits).
    """

    name: str
    columns: dict[str, str]
    key: tuple[str, ...]
    values: tuple[str, ...]
    derived: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        missing = [c for c in (*self.key, *self.values, *self.derived) if c not in self.columns]
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


def upsert(conn: duckdb.DuckDBPyConnection, spec: RawTableSpec, rows: pa.Table, now: datetime,
           provenance: str | None = None) -> UpsertCounts:
    """Insert new keys, update rows whose values changed, leave the rest untouched.

    Call inside a transaction. ``rows`` holds the spec's columns and either a ``provenance``
    column or the ``provenance`` argument for all rows. Duplicate keys within one batch keep their
    first row. Into an empty table this is a plain bulk insert.
    """
    conn.execute(spec.ddl())
    if rows.num_rows == 0:
        return UpsertCounts(0, 0, 0)
    missing = [c for c in spec.columns if c not in rows.column_names]
    if missing:
        raise ValueError(f"{spec.name}: incoming rows lack columns {missing}")
    if provenance is not None:
        rows = rows.select(list(spec.columns)).append_column("provenance", pa.array([provenance] * rows.num_rows))
    elif "provenance" not in rows.column_names:
        raise ValueError(f"{spec.name}: rows need a provenance (column or argument)")
    columns = [*spec.columns, "provenance"]
    with registered(conn, "upsert_incoming", rows.select(columns)):
        quoted = ", ".join(f'"{c}"' for c in columns)
        keys = ", ".join(f'"{c}"' for c in spec.key)
        source = "upsert_incoming"
        try:
            match = _match(spec, "t", "s", spec.key)
            total, fetched, existing = conn.execute(
                f"SELECT count(*), count(DISTINCT ({keys})), (SELECT count(*) FROM upsert_incoming s "
                f"JOIN {spec.name} t ON {match}) FROM upsert_incoming").fetchone()
            if total != fetched:  # keep each key's first row
                conn.execute(f"""CREATE OR REPLACE TEMP TABLE upsert_staged AS SELECT {quoted} FROM (
                    SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY _order) AS _rank
                    FROM (SELECT *, row_number() OVER () AS _order FROM upsert_incoming)) WHERE _rank = 1""")
                source = "upsert_staged"
            if existing == 0:  # only new keys (a first load, or new days): a plain bulk insert
                conn.execute(f"INSERT INTO {spec.name} ({quoted}, ingested_at, updated_at) SELECT {quoted}, ?, ? "
                             f"FROM {source}", [now, now])
                return UpsertCounts(fetched=fetched, inserted=fetched, updated=0)
            changed = " OR ".join(f't."{c}" IS DISTINCT FROM s."{c}"' for c in spec.values)
            assignments = ", ".join(f'"{c}" = s."{c}"' for c in (*spec.values, *spec.derived, "provenance"))
            updated = conn.execute(f"UPDATE {spec.name} AS t SET {assignments}, updated_at = ? FROM {source} s "
                                   f"WHERE {match} AND ({changed})", [now]).fetchone()[0]
            inserted = conn.execute(f"""
                INSERT INTO {spec.name} ({quoted}, ingested_at, updated_at)
                SELECT {quoted}, ?, ? FROM {source} s WHERE NOT EXISTS (SELECT 1 FROM {spec.name} t WHERE {match})""",
                                    [now, now]).fetchone()[0]
        finally:
            if source == "upsert_staged":
                conn.execute("DROP TABLE IF EXISTS upsert_staged")
    return UpsertCounts(fetched=fetched, inserted=inserted, updated=updated)

