"""The `gwm` console script as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gwm_assets.fields.table import write_fields
from gwm_assets.warehouse import open_warehouse
from tests.test_warehouse import hold_write_lock

GWM = str(Path(sys.executable).parent / "gwm")


def gwm(*args: str, warehouse: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if warehouse is not None:
        env["GWM_WAREHOUSE"] = str(warehouse)
    return subprocess.run([GWM, *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def warehouse(tmp_path, world) -> Path:
    path = tmp_path / "w.duckdb"
    with open_warehouse(path) as conn:
        write_fields(conn, world)
    return path


def test_sql_prints_the_leaf_count(warehouse, world):
    result = gwm("sql", "select count(*) as leaves from fields where kind = 'leaf'", warehouse=warehouse)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].strip() == "leaves" and lines[2].strip() == str(len(world.leaves))
    assert lines[-1] == "(1 row)"


def test_sql_is_read_only_and_reports_errors(warehouse):
    result = gwm("sql", "delete from fields", warehouse=warehouse)
    assert result.returncode == 1 and "read-only" in result.stderr.lower()
    result = gwm("sql", "select * from no_such_table", warehouse=warehouse)
    assert result.returncode == 1 and "no_such_table" in result.stderr
    result = gwm("sql", "select 1", warehouse=warehouse.parent / "missing.duckdb")
    assert result.returncode == 2 and "no warehouse at" in result.stderr


def test_sql_waits_for_a_running_writer(warehouse):
    holder = hold_write_lock(warehouse, 2.0)
    start = time.monotonic()
    result = gwm("sql", "select count(*) from fields", "--timeout", "60", warehouse=warehouse)
    holder.wait(timeout=10)
    assert result.returncode == 0, result.stderr
    assert "locked by a running materialization; waiting" in result.stderr
    assert time.monotonic() - start >= 1.0


def test_sql_row_limit(warehouse):
    result = gwm("sql", "select path from fields order by path", "--max-rows", "3", warehouse=warehouse)
    assert result.returncode == 0
    assert "(3 rows) (first 3; raise --max-rows to see more)" in result.stdout


def test_fields_lists_a_prefix():
    result = gwm("fields", "financial.yield_curves")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "financial.yield_curves.ten_year" in out and "pct_per_year" in out
    assert "financial.credit" not in out
    assert "(17 fields: 16 leaf, 1 coarse;" in out


def test_fields_with_a_new_entity_and_kind_filter():
    result = gwm("fields", "firm_NVDA.financials", "--entity", "firm_NVDA", "--kind", "leaf")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[2:-1]]
    assert rows and all(row[0].startswith("firm_NVDA.financials.") and row[1] == "leaf" for row in rows)
    assert any(row[0] == "firm_NVDA.financials.revenue" for row in rows)


def test_fields_unknown_prefix_suggests_paths():
    result = gwm("fields", "financial.yeild_curves")
    assert result.returncode == 2
    assert "Closest valid paths: financial.yield_curves" in result.stderr
