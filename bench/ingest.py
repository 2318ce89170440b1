"""Ingest of the embedded default, against DuckDB's own bulk load of the same Arrow rows.

- full load: gwm's path (upsert by natural key + provenance + refresh bookkeeping, one transaction)
  vs the baseline (per raw table: CREATE TABLE, one INSERT ... SELECT from the Arrow table);
- one-day refresh: upserting one new day for every daily series of the embedded default into the
  full warehouse, vs the full load (raw tables only);
- end to end (what a user waits for): full = raw load + first `observations` build; one-day refresh =
  raw upsert of the new day + the incremental `observations` build (only the touched series).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from bench.timing import median_seconds
from gwm_assets.observations.build import build_observations, write_source_series
from gwm_assets.sources.base import FetchResult
from gwm_assets.sources.bundled import ITEMS
from gwm_assets.sources.catalog import load_catalog
from gwm_assets.sources.raw_tables import RAW_SPECS
from gwm_assets.sources.refresh import write_batch
from gwm_assets.warehouse.clock import utcnow
from gwm_assets.warehouse.connection import transaction
from gwm_assets.warehouse.ledger import ensure_ledger
from gwm_model.schema import default_world


def source_of(spec) -> str:
    return next(s for s, candidate in RAW_SPECS.items() if candidate is spec)


def write_grouped(conn, loaded) -> None:
    """What `bundled_history` does: one upsert per raw table, one provenance per item."""
    groups = defaultdict(list)
    for item, table in loaded:
        groups[source_of(item.raw)].append((item.provenance, FetchResult(table)))
    for source, parts in groups.items():
        write_batch(conn, source, [r for _, r in parts], [p for p, _ in parts], "bench", utcnow())


def next_day(loaded):
    """One new row per daily series: each series' last row, moved one day on."""
    out = []
    for item, table in loaded:
        if item.raw.name not in ("raw_fred", "raw_yahoo"):
            continue
        key = "series_id" if item.raw.name == "raw_fred" else "ticker"
        last = {}
        for row in table.to_pylist():
            if row[key] not in last or row["date"] > last[row[key]]["date"]:
                last[row[key]] = row
        rows = [dict(r, date=r["date"] + timedelta(days=1)) for r in last.values()]
        out.append((item, pa.Table.from_pylist(rows, schema=table.schema)))
    return out


def timed_on_fresh(write, repeats: int, workdir: Path) -> float:
    """Median seconds of ``write(conn)`` on a new empty warehouse each time (opening it is not timed)."""
    samples = []
    for i in range(repeats):
        with duckdb.connect(str(workdir / f"fresh{i}-{write.__name__}.duckdb")) as conn:
            start = time.perf_counter()
            write(conn)
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def run() -> dict[str, object]:
    loaded = [(item, item.load()) for item in ITEMS]
    rows = sum(t.num_rows for _, t in loaded)
    workdir = Path(tempfile.mkdtemp(prefix="gwm-bench-"))

    def gwm(conn) -> None:
        with transaction(conn):
            ensure_ledger(conn)
            write_grouped(conn, loaded)

    def baseline(conn) -> None:
        by_table = defaultdict(list)
        for item, table in loaded:  # the same rows gwm writes: source columns plus provenance
            by_table[item.raw.name].append(table.append_column(
                "provenance", pa.array([item.provenance.provenance_id] * table.num_rows, pa.string())))
        for name, tables in by_table.items():
            incoming = pa.concat_tables(tables)  # noqa: F841 (scanned by DuckDB by name)
            conn.execute(f"CREATE TABLE {name} AS SELECT * FROM incoming WHERE false")
            conn.execute(f"INSERT INTO {name} SELECT * FROM incoming")

    full_gwm = timed_on_fresh(gwm, 5, workdir)
    full_base = timed_on_fresh(baseline, 5, workdir)

    full = workdir / "full.duckdb"
    with duckdb.connect(str(full)) as conn:
        gwm(conn)
    increment = next_day(loaded)
    new_rows = sum(t.num_rows for _, t in increment)
    samples = []
    with duckdb.connect(str(full)) as conn:
        for _ in range(9):
            conn.execute("BEGIN TRANSACTION")
            start = time.perf_counter()
            write_grouped(conn, increment)
            samples.append(time.perf_counter() - start)
            conn.execute("ROLLBACK")  # keep the warehouse identical between repeats
    refresh = statistics.median(samples)
    open_s = median_seconds(lambda: duckdb.connect(str(full)).close(), repeats=9)

    with duckdb.connect(str(full)) as conn, transaction(conn):
        write_source_series(conn, load_catalog(default_world()))

    def full_build(conn) -> None:
        with transaction(conn):
            build_observations(conn, utcnow(), full=True)

    with duckdb.connect(str(full)) as conn:
        observations = median_seconds(lambda: full_build(conn), repeats=5)
        n_obs = conn.execute("SELECT count(*) FROM observations").fetchone()[0]
        samples, recomputed = [], None
        for _ in range(9):
            conn.execute("BEGIN TRANSACTION")
            start = time.perf_counter()
            write_grouped(conn, increment)
            recomputed = build_observations(conn, utcnow()).recomputed_series
            samples.append(time.perf_counter() - start)
            conn.execute("ROLLBACK")
    refresh_e2e = statistics.median(samples)
    full_e2e = full_gwm + observations
    return {
        "raw_rows": rows, "observations_rows": n_obs, "one_day_rows": new_rows,
        "full_load_s": {"gwm": full_gwm, "baseline_duckdb_bulk_insert": full_base, "ratio": full_gwm / full_base,
                        "target_ratio": 2.0},
        "one_day_refresh_s": {"gwm": refresh, "full_load": full_gwm, "share_of_full_load": refresh / full_gwm,
                              "target": 0.10},
        "end_to_end_s": {"one_day_refresh": refresh_e2e, "full_load": full_e2e,
                         "share_of_full_load": refresh_e2e / full_e2e, "target": 0.10,
                         "series_recomputed_by_refresh": recomputed},
        "open_warehouse_s": open_s,
        "observations_full_build_s": observations,
    }
