"""All checks on the embedded default: Great Expectations suites vs the same rules as DuckDB SQL.

- gx_import_s: importing great_expectations in a fresh interpreter (paid once per check step);
- gx_validate_s: every raw suite and the observations suite, frames read from DuckDB, validated by GX;
- baseline_sql_s: the row-level rules of the observations suite evaluated as one DuckDB query;
- code_location_load_s: importing gwm_assets.definitions in a fresh interpreter (GX must not be imported).
The target: import + validation of all suites under 30 s on this machine.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from bench.ingest import ITEMS, write_grouped
from bench.timing import median_seconds
from gwm_assets.observations.build import build_observations, write_source_series
from gwm_assets.observations.quarantine import observations_suite
from gwm_assets.sources.catalog import load_catalog
from gwm_assets.sources.checks import RAW_SUITES
from gwm_assets.validation.gx_runner import read_frame, validate
from gwm_assets.validation.ranges import load_ranges, write_field_ranges
from gwm_assets.warehouse.clock import utcnow
from gwm_assets.warehouse.connection import transaction
from gwm_assets.warehouse.ledger import ensure_ledger
from gwm_model.schema import default_world


def _fresh_interpreter_s(code: str) -> float:
    samples = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        samples.append(time.perf_counter() - start)
    return sorted(samples)[1]


def run() -> dict[str, object]:
    path = Path(tempfile.mkdtemp(prefix="gwm-bench-checks-")) / "w.duckdb"
    loaded = [(item, item.load()) for item in ITEMS]
    world = default_world()
    with duckdb.connect(str(path)) as conn, transaction(conn):
        ensure_ledger(conn)
        write_grouped(conn, loaded)
        write_source_series(conn, load_catalog(world))
        write_field_ranges(conn, load_ranges(world))
        build_observations(conn, utcnow())
    suites = [*RAW_SUITES.values(), observations_suite()]
    now = utcnow()

    def gx_all() -> None:
        with duckdb.connect(str(path), read_only=True) as conn:
            frames = [(s, read_frame(conn, s, now)) for s in suites if s.name in _tables(conn)]
        failed = [o.summary() for s, f in frames for o in validate(f, s) if not o.passed]
        assert not failed, failed

    def sql_rules() -> None:
        suite = observations_suite()
        passes = " AND ".join(e.sql_pass() for e in suite.row_level)
        with duckdb.connect(str(path), read_only=True) as conn:
            conn.execute(f"SELECT count(*) FILTER (NOT ({passes})) FROM ({suite.frame_sql(now)})").fetchone()

    gx_import = _fresh_interpreter_s("import great_expectations")
    load = _fresh_interpreter_s("import sys, gwm_assets.definitions; "
                                "assert 'great_expectations' not in sys.modules")
    gx_validate = median_seconds(gx_all, repeats=3)
    sql = median_seconds(sql_rules, repeats=5)
    with duckdb.connect(str(path), read_only=True) as conn:
        rows = {s.name: conn.execute(f"SELECT count(*) FROM {s.name}").fetchone()[0] for s in suites
                if s.name in _tables(conn)}
    total = gx_import + gx_validate
    return {"rows_validated": rows, "expectations": sum(len(s.expectations) for s in suites),
            "gx_import_s": gx_import, "gx_validate_s": gx_validate, "baseline_sql_rules_s": sql,
            "gx_vs_sql_ratio": gx_validate / sql, "code_location_load_s": load,
            "all_checks_s": {"total": total, "target": 30.0, "within_target": total < 30.0}}


def _tables(conn: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
