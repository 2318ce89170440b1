"""Warehouse plumbing: transactional schema loads and waiting for DuckDB's single-writer lock."""

from __future__ import annotations

import subprocess
import sys
import time

import duckdb
import pyarrow as pa
import pytest

from gwm_assets.fields.table import fields_arrow, write_fields
from gwm_assets.warehouse import WarehouseBusy, WarehouseMissing, open_warehouse
from gwm_model.schema import load_schema

HOLD_LOCK = """
import duckdb, sys, time
conn = duckdb.connect(sys.argv[1])
conn.execute("create table if not exists held(x int)")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.close()
"""


def hold_write_lock(path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_write_fields_loads_the_world(tmp_path, world):
    with open_warehouse(tmp_path / "w.duckdb") as conn:
        load = write_fields(conn, world)
        assert (load.rows, load.leaves, load.coarse) == (len(world.fields), len(world.leaves), len(world.coarse))
        assert load.added == load.rows and load.previous_hash is None
        row = conn.execute("select layer, parent, kind, period, unit, h, w, is_output, entity_type "
                           "from fields where path = 'country_us.macro.inflation.headline_cpi'").fetchone()
        assert row == ("country_us", "country_us.macro.inflation", "leaf", "monthly", "pct_yoy", 1, 2, True,
                       "Country")
        again = write_fields(conn, world)  # idempotent: same rows, nothing added or changed
        assert (again.rows, again.added, again.removed, again.changed) == (load.rows, 0, 0, 0)
        assert again.previous_hash == world.schema_hash


def test_failed_load_leaves_the_old_table(tmp_path, world, mini_schema):
    with open_warehouse(tmp_path / "w.duckdb") as conn:
        write_fields(conn, world)
        rows = fields_arrow(load_schema(mini_schema)).to_pylist()
        rows.append(dict(rows[0]))  # a duplicate path violates the primary key halfway through
        with pytest.raises(duckdb.ConstraintException):
            write_fields(conn, pa.Table.from_pylist(rows))
        count, hashes = conn.execute("select count(*), count(distinct schema_hash) from fields").fetchone()
        assert count == len(world.fields) and hashes == 1
        assert conn.execute("select schema_hash from fields limit 1").fetchone()[0] == world.schema_hash


def test_reader_waits_for_a_writer(tmp_path):
    path = tmp_path / "w.duckdb"
    duckdb.connect(str(path)).close()
    holder = hold_write_lock(path, 1.5)
    waits = []
    start = time.monotonic()
    with open_warehouse(path, read_only=True, timeout_s=30, on_wait=lambda s, e: waits.append(s)) as conn:
        elapsed = time.monotonic() - start
        assert conn.execute("select count(*) from held").fetchone() == (0,)
    holder.wait(timeout=10)
    assert waits, "the reader should have found the file locked and waited"
    assert elapsed >= 0.5


def test_busy_warehouse_times_out_with_a_clear_error(tmp_path):
    path = tmp_path / "w.duckdb"
    holder = hold_write_lock(path, 4)
    try:
        with pytest.raises(WarehouseBusy, match="stayed locked by another process"):
            with open_warehouse(path, timeout_s=0.5):
                pass
    finally:
        holder.kill()
        holder.wait()


def test_read_only_needs_an_existing_warehouse(tmp_path):
    with pytest.raises(WarehouseMissing, match="run `make run`"):
        with open_warehouse(tmp_path / "absent.duckdb", read_only=True):
            pass
    assert not (tmp_path / "absent.duckdb").exists()
