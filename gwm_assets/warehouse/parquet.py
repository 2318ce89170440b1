"""The warehouse as Parquet files that DuckDB reads: an export of every table, and read connections over it.

An export directory holds::

    DIR/manifest.json                                   what is current: per table version, rows, columns
    DIR/<table>/<version>/data_0.parquet                one folder per table, one sub-folder per version
    DIR/observations/<version>/source=<s>/data_0.parquet   observations, hive-partitioned by source

A table's version is a hash of its columns and rows, so an export rewrites only the tables whose contents
changed, and exporting an unchanged warehouse again writes nothing. A version folder is written under a
temporary name and renamed into place; then ``manifest.json`` is replaced by a rename, so a reader sees
the previous export or the new one, never half of one. Version folders named by neither the new nor the
previous manifest are removed, so a reader that opened the previous export keeps its files.

A reader gets an in-memory DuckDB with one view per table over ``read_parquet`` (columns cast back to
their warehouse types) and the warehouse's own views (``field_coverage``, ...) recreated on top.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from gwm_assets.warehouse.coverage_views import FIELD_COVERAGE, LAYER_COVERAGE
from gwm_assets.warehouse.errors import WarehouseMissing

FORMAT = "gwm-warehouse-parquet/1"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".export.lock"
PARTITION_BY = {"observations": ("source",)}
SORT_BY = {"observations": ("field_path", "ts", "source")}
READ_ATTEMPTS = 3
# Views are exported as the SQL gwm defines them with: DuckDB's own text of a view (duckdb_views().sql) can be
# wrong (1.5.6 writes `FROM f CROSS JOIN a LEFT JOIN p ON p.x = f.x` as `FROM f, a LEFT JOIN p ...`, which no
# longer binds). A view not listed here is exported as DuckDB's text.
VIEW_DEFINITIONS = {"field_coverage": FIELD_COVERAGE, "layer_coverage": LAYER_COVERAGE}


class ParquetWarehouseIncomplete(WarehouseMissing):
    """The export directory has no manifest, or a table the manifest names is missing or damaged."""


class ParquetExportError(RuntimeError):
    """An export was refused (the directory holds something other than a gwm export)."""


@dataclass(frozen=True)
class ExportReport:
    directory: Path
    tables: dict[str, dict]  # the manifest's entries, by table
    written: tuple[str, ...]  # tables whose new version was written
    kept: tuple[str, ...]  # tables whose files were already current
    dropped: tuple[str, ...]  # tables of the previous export that the warehouse no longer has
    changed: bool  # whether manifest.json was replaced


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str | Path) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _tables(conn: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' "
        "AND NOT temporary ORDER BY table_name").fetchall()]


def _columns(conn: duckdb.DuckDBPyConnection, table: str) -> list[list[str]]:
    return [[n, t] for n, t in conn.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = ? ORDER BY column_index", [table]).fetchall()]


def _stored_views(conn: duckdb.DuckDBPyConnection) -> dict[str, str]:
    views = conn.execute(
        "SELECT view_name, sql FROM duckdb_views() WHERE database_name = current_database() AND schema_name = 'main' "
        "AND NOT internal AND NOT temporary ORDER BY view_name").fetchall()
    return {name: VIEW_DEFINITIONS.get(name, sql).strip() for name, sql in views}


def table_version(conn: duckdb.DuckDBPyConnection, table: str, columns: list[list[str]]) -> tuple[int, str]:
    """(rows, version): the version hashes the columns, the row count and an order-free sum of row hashes."""
    rows, digest = conn.execute(
        f"SELECT count(*), coalesce(sum(hash(__row)::HUGEINT), 0) FROM {_ident(table)} __row").fetchone()
    text = json.dumps([columns, rows, str(digest)])
    return int(rows), hashlib.sha256(text.encode()).hexdigest()[:16]


def _pattern(folder: Path, partitioned: bool) -> Path:
    return folder / "**" / "*.parquet" if partitioned else folder / "*.parquet"


def _rows_on_disk(conn: duckdb.DuckDBPyConnection, folder: Path, partitioned: bool) -> int | None:
    if not folder.is_dir() or not any(folder.rglob("*.parquet")):
        return None
    try:
        return conn.execute(f"SELECT count(*) FROM read_parquet({_literal(_pattern(folder, partitioned))})"
                            ).fetchone()[0]
    except duckdb.Error:
        return None


def read_manifest(directory: str | Path) -> dict:
    """The current manifest of the export at ``directory``; a clear error when there is none."""
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    fix = (f"Fix: run `gwm warehouse export {directory}` (or materialize with GWM_WAREHOUSE_PARQUET={directory}) "
           "first")
    if not path.exists():
        raise ParquetWarehouseIncomplete(f"no Parquet warehouse at {directory}: {path} does not exist. {fix}")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise ParquetWarehouseIncomplete(f"the Parquet warehouse manifest {path} is not valid JSON ({exc}). "
                                         f"{fix}") from exc
    if manifest.get("format") != FORMAT:
        raise ParquetWarehouseIncomplete(f"{path} is not a gwm warehouse export (format "
                                         f"{manifest.get('format')!r}, expected {FORMAT!r}). {fix}")
    return manifest


@contextmanager
def _export_lock(directory: Path) -> Iterator[None]:
    with open(directory / LOCK_FILE, "a") as handle:  # "a": taking the lock leaves the file untouched
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_version(conn: duckdb.DuckDBPyConnection, table: str, columns: list[list[str]], folder: Path,
                   partition: tuple[str, ...]) -> None:
    names = {c[0] for c in columns}
    order = [c for c in SORT_BY.get(table, ()) if c in names]
    query = f"SELECT * FROM {_ident(table)}" + (f" ORDER BY {', '.join(map(_ident, order))}" if order else "")
    tmp = folder.parent / f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        if partition:
            conn.execute(f"COPY ({query}) TO {_literal(tmp)} (FORMAT parquet, COMPRESSION zstd, "
                         f"PARTITION_BY ({', '.join(map(_ident, partition))}))")
        else:
            tmp.mkdir()
            conn.execute(f"COPY ({query}) TO {_literal(tmp / 'data_0.parquet')} (FORMAT parquet, COMPRESSION zstd)")
        if folder.exists():  # a damaged copy of this version: no manifest can be using it as it is
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _write_json(path: Path, doc: dict) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _collect_garbage(directory: Path, keep: dict[str, set[str]]) -> None:
    """Remove version folders (and leftovers of interrupted exports) that no kept manifest names."""
    for table, versions in keep.items():
        folder = directory / table
        if not folder.is_dir():
            continue
        for child in folder.iterdir():
            if child.name not in versions:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        if not versions and not any(folder.iterdir()):
            folder.rmdir()


def export_warehouse(conn: duckdb.DuckDBPyConnection, directory: str | Path,
                     now: dt.datetime | None = None) -> ExportReport:
    """Write every table of ``conn``'s database as Parquet under ``directory``; see the module docstring."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    # the lock file marks a directory as ours, so an export interrupted before its first manifest can resume
    ours = (directory / LOCK_FILE).exists() or (directory / MANIFEST_FILE).exists()
    if not ours and any(directory.iterdir()):
        raise ParquetExportError(f"{directory} is not empty and holds no gwm warehouse export "
                                 f"({MANIFEST_FILE} is missing). Fix: export into a new or empty directory")
    with _export_lock(directory):
        previous = read_manifest(directory) if (directory / MANIFEST_FILE).exists() else None
        old = previous["tables"] if previous else {}
        stamp = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
        entries, written, kept = {}, [], []
        for table in _tables(conn):
            columns = _columns(conn, table)
            rows, version = table_version(conn, table, columns)
            entry = old.get(table)
            if entry and entry["version"] == version and _rows_on_disk(
                    conn, directory / entry["path"], bool(entry["partition_by"])) == rows:
                entries[table] = entry
                kept.append(table)
                continue
            partition = PARTITION_BY.get(table, ()) if rows else ()  # an empty table writes one empty file
            _write_version(conn, table, columns, directory / table / version, partition)
            entries[table] = {"version": version, "rows": rows, "columns": columns, "partition_by": list(partition),
                              "path": f"{table}/{version}", "exported_at": stamp}
            written.append(table)
        views = _stored_views(conn)
        changed = previous is None or previous["tables"] != entries or previous.get("views") != views
        if changed:
            source = conn.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
                                  ).fetchone()[0]
            _write_json(directory / MANIFEST_FILE, {"format": FORMAT, "exported_at": stamp, "source": source,
                                                    "tables": entries, "views": views})
        keep: dict[str, set[str]] = {t: set() for t in {*old, *entries}}
        for table, entry in [*old.items(), *entries.items()]:
            keep[table].add(entry["version"])
        _collect_garbage(directory, keep)
    return ExportReport(directory, entries, tuple(written), tuple(kept), tuple(sorted(set(old) - set(entries))),
                        changed)


def _create_views(conn: duckdb.DuckDBPyConnection, directory: Path, manifest: dict) -> None:
    fix = f"Fix: export again with `gwm warehouse export {directory}` (or re-materialize a warehouse writer)"
    for table, entry in manifest["tables"].items():
        folder, partitioned = directory / entry["path"], bool(entry["partition_by"])
        if not folder.is_dir() or not any(folder.rglob("*.parquet")):
            raise ParquetWarehouseIncomplete(
                f"the Parquet warehouse at {directory} is incomplete: table '{table}' has no Parquet files under "
                f"{folder} (the manifest lists {entry['rows']} rows). {fix}")
        columns = ", ".join(f"CAST({_ident(n)} AS {t}) AS {_ident(n)}" for n, t in entry["columns"])
        options = ("hive_partitioning = true, hive_types_autocast = false" if partitioned
                   else "hive_partitioning = false")
        try:
            conn.execute(f"CREATE VIEW {_ident(table)} AS SELECT {columns} FROM "
                         f"read_parquet({_literal(_pattern(folder, partitioned))}, {options})")
            rows = conn.execute(f"SELECT count(*) FROM {_ident(table)}").fetchone()[0]
        except duckdb.Error as exc:
            raise ParquetWarehouseIncomplete(f"the Parquet warehouse at {directory} is damaged: table '{table}' "
                                             f"under {folder} cannot be read ({exc}). {fix}") from exc
        if rows != entry["rows"]:
            raise ParquetWarehouseIncomplete(f"the Parquet warehouse at {directory} is incomplete: table '{table}' "
                                             f"under {folder} holds {rows} rows, the manifest lists {entry['rows']}. "
                                             f"{fix}")
    pending = dict(manifest.get("views", {}))
    while pending:  # a view may be built on another: create in rounds until none is left or a round makes none
        failed = {}
        for name, sql in pending.items():
            try:
                conn.execute(sql)
            except duckdb.Error as exc:
                failed[name] = exc
        if len(failed) == len(pending):
            name, exc = next(iter(failed.items()))
            raise ParquetWarehouseIncomplete(f"the Parquet warehouse at {directory}: view '{name}' cannot be "
                                             f"created over the exported tables ({exc}). {fix}")
        pending = {name: pending[name] for name in failed}


def open_parquet_warehouse(directory: str | Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB whose views read the current export at ``directory`` (the caller closes it)."""
    directory = Path(directory).resolve()
    for attempt in range(READ_ATTEMPTS):
        manifest = read_manifest(directory)
        conn = duckdb.connect()
        try:
            _create_views(conn, directory, manifest)
            return conn
        except ParquetWarehouseIncomplete:
            conn.close()
            # an export finished twice while we read: its files went away under us; read the new one
            if attempt + 1 == READ_ATTEMPTS or read_manifest(directory) == manifest:
                raise
    raise AssertionError("unreachable")
