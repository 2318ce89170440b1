"""Plausible value ranges per world field, from ``plausible_ranges.yaml`` (by unit, with overrides).

Loaded against the world schema: an unknown unit or field path fails with the file and the fix.
The ranges land in the warehouse as table ``field_ranges`` (field_path, range_min, range_max,
range_basis) so that the observations build and the checks read the same numbers.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import yaml

from gwm_assets.warehouse.connection import registered
from gwm_model.schema import SchemaError, WorldSchema

RANGES_PATH = Path(__file__).with_name("plausible_ranges.yaml")
RANGE_COLUMNS = {"field_path": pa.string(), "range_min": pa.float64(), "range_max": pa.float64(),
                 "range_basis": pa.string()}


class RangeError(SchemaError):
    """The plausible-ranges file names a unit or field the schema lacks, or a malformed range."""


def _bounds(value: object, where: str) -> tuple[float, float]:
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)):
        raise RangeError(f"{where}: a range is [min, max] with two numbers, got {value!r}. Fix: e.g. [0, 100]")
    low, high = float(value[0]), float(value[1])
    if low > high:
        raise RangeError(f"{where}: min {low} is above max {high}. Fix: swap them")
    return low, high


def load_ranges(schema: WorldSchema, path: Path = RANGES_PATH) -> dict[str, tuple[float, float, str]]:
    """field path -> (min, max, basis) for every leaf field that has a range."""
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    units = doc.get("units") or {}
    overrides = doc.get("fields") or {}
    declared = set(schema.units)
    for unit in units:
        if unit not in declared:
            raise RangeError(f"{path}: unit '{unit}' is not declared in the world schema. "
                             f"Fix: use one of {', '.join(sorted(declared))}")
    out = {}
    for spec in schema.leaves:
        if spec.unit in units:
            low, high = _bounds(units[spec.unit], f"{path}: units.{spec.unit}")
            out[spec.path] = (low, high, f"unit {spec.unit}")
    for field, value in overrides.items():
        if field not in schema:
            raise RangeError(f"{path}: fields.{field}: {schema.unknown_path(field)}. Fix: use an existing path")
        low, high = _bounds(value, f"{path}: fields.{field}")
        out[field] = (low, high, f"field override in {Path(path).name}")
    return out


def ranges_arrow(ranges: dict[str, tuple[float, float, str]]) -> pa.Table:
    rows = [{"field_path": f, "range_min": lo, "range_max": hi, "range_basis": basis}
            for f, (lo, hi, basis) in sorted(ranges.items())]
    return pa.Table.from_pylist(rows, schema=pa.schema(RANGE_COLUMNS))


def write_field_ranges(conn: duckdb.DuckDBPyConnection, ranges: dict[str, tuple[float, float, str]]) -> int:
    """Replace ``field_ranges``; call inside a transaction."""
    table = ranges_arrow(ranges)
    with registered(conn, "incoming_ranges", table):
        conn.execute("CREATE OR REPLACE TABLE field_ranges AS SELECT * FROM incoming_ranges")
    return table.num_rows


def ensure_field_ranges(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS field_ranges (field_path VARCHAR, range_min DOUBLE, "
                 "range_max DOUBLE, range_basis VARCHAR)")
