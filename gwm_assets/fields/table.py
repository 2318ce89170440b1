"""The ``fields`` table: the world schema in the warehouse, so coverage is a SQL join."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from gwm_assets.warehouse.connection import registered, transaction
from gwm_model.schema import WorldSchema

FIELDS_DDL = """
CREATE TABLE fields (
    path        VARCHAR PRIMARY KEY,
    layer       VARCHAR NOT NULL,
    parent      VARCHAR,
    kind        VARCHAR NOT NULL CHECK (kind IN ('leaf', 'coarse')),
    period      VARCHAR NOT NULL,
    period_days DOUBLE  NOT NULL,
    loss_weight DOUBLE  NOT NULL CHECK (loss_weight >= 0),
    unit        VARCHAR NOT NULL,
    description VARCHAR NOT NULL,
    h           INTEGER NOT NULL CHECK (h > 0),
    w           INTEGER NOT NULL CHECK (w > 0),
    is_output   BOOLEAN NOT NULL,
    entity      VARCHAR,
    entity_type VARCHAR,
    schema_hash VARCHAR NOT NULL
)
"""

COLUMNS = ("path", "layer", "parent", "kind", "period", "period_days", "loss_weight", "unit", "description",
           "h", "w", "is_output", "entity", "entity_type", "schema_hash")


@dataclass(frozen=True)
class FieldsLoad:
    rows: int
    leaves: int
    coarse: int
    layers: int
    added: int
    removed: int
    changed: int
    previous_hash: str | None


def fields_arrow(schema: WorldSchema) -> pa.Table:
    rows = [dict(f.as_row(), schema_hash=schema.schema_hash) for f in schema.fields]
    return pa.Table.from_pylist(rows).select(list(COLUMNS))


def _table_exists(conn: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()[0])


def write_fields(conn: duckdb.DuckDBPyConnection, schema: WorldSchema | pa.Table) -> FieldsLoad:
    """Replace ``fields`` with ``schema`` in one transaction: on any error the old table stays."""
    incoming = fields_arrow(schema) if isinstance(schema, WorldSchema) else schema
    with registered(conn, "incoming_fields", incoming), transaction(conn):
        previous: dict[str, tuple] = {}
        previous_hash = None
        if _table_exists(conn, "fields"):
            old = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM fields").fetchall()
            previous = {row[0]: row[:-1] for row in old}
            previous_hash = old[0][-1] if old else None
        conn.execute("DROP TABLE IF EXISTS fields")
        conn.execute(FIELDS_DDL)
        conn.execute(f"INSERT INTO fields SELECT {', '.join(COLUMNS)} FROM incoming_fields")
        stats = conn.execute("""
            SELECT count(*), count(*) FILTER (kind = 'leaf'), count(*) FILTER (kind = 'coarse'),
                   count(DISTINCT layer) FROM fields""").fetchone()
    current = {row["path"]: tuple(row[c] for c in COLUMNS[:-1]) for row in incoming.to_pylist()}
    changed = sum(1 for p, row in current.items() if p in previous and previous[p] != row)
    return FieldsLoad(
        rows=stats[0], leaves=stats[1], coarse=stats[2], layers=stats[3],
        added=len(current.keys() - previous.keys()), removed=len(previous.keys() - current.keys()),
        changed=changed, previous_hash=previous_hash,
    )
