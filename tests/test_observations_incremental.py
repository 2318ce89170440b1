"""An incremental observations build recomputes only changed series and equals a full rebuild."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import duckdb
import pyarrow as pa

from gwm_assets.observations.build import build_observations, write_source_series
from gwm_assets.sources import fred
from gwm_assets.sources.base import FetchResult
from gwm_assets.sources.catalog import load_catalog
from gwm_assets.sources.refresh import write_batch
from gwm_assets.warehouse.connection import transaction
from gwm_assets.warehouse.ledger import Provenance

PROV = Provenance("test:fred", "fred", "test", "test", "test")
COLUMNS = "field_path, ts, available_at, value, revised_value, source, source_key, provenance"


def monthly_cpi(months: int, start_value: float = 100.0) -> list[dict]:
    rows, day = [], date(2020, 1, 1)
    for i in range(months):
        rows.append({"series_id": "CPIAUCSL", "date": day, "realtime_start": None, "realtime_end": None,
                     "value": start_value + i})
        day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return rows


def daily_ten_year(days: int) -> list[dict]:
    return [{"series_id": "DGS10", "date": date(2024, 1, 1) + timedelta(days=i), "realtime_start": None,
             "realtime_end": None, "value": 4.0 + i / 100} for i in range(days)]


def write(conn, rows, now):
    table = pa.Table.from_pylist(rows, schema=fred.ARROW_SCHEMA)
    with transaction(conn):
        write_batch(conn, "fred", [FetchResult(table)], PROV, "run", now)


def build(conn, now, full=False):
    with transaction(conn):
        return build_observations(conn, now, full=full)


def snapshot(conn):
    return conn.execute(f"SELECT {COLUMNS} FROM observations ORDER BY field_path, ts, source").fetchall()


def test_incremental_build_touches_only_changed_series_and_matches_full(world, tmp_path):
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    with transaction(conn):
        write_source_series(conn, load_catalog(world))
    write(conn, monthly_cpi(30) + daily_ten_year(50), datetime(2026, 1, 1))
    first = build(conn, datetime(2026, 1, 1, 0, 1))
    assert first.recomputed_series is None  # the first build computes everything
    assert first.inserted == 18 + 50  # pct_yoy needs a year of history: 30 months give 18 values

    # nothing new: nothing recomputed, nothing changed
    again = build(conn, datetime(2026, 1, 2))
    assert (again.recomputed_series, again.inserted, again.updated, again.deleted) == (0, 0, 0, 0)

    # one new month of CPI and a revised earlier month; DGS10 untouched
    cpi = monthly_cpi(31)
    cpi[20]["value"] += 5.0
    write(conn, cpi, datetime(2026, 1, 3))
    step = build(conn, datetime(2026, 1, 3, 0, 1))
    assert step.recomputed_series == 1
    assert step.inserted == 1 and step.updated >= 1 and step.deleted == 0
    ten_year_ingested = conn.execute("SELECT DISTINCT ingested_at FROM observations "
                                     "WHERE source_key = 'DGS10'").fetchall()
    assert ten_year_ingested == [(datetime(2026, 1, 1, 0, 1),)]  # untouched series keep their rows as they were

    incremental = snapshot(conn)
    build(conn, datetime(2026, 1, 4), full=True)
    assert snapshot(conn) == incremental


def test_catalog_change_forces_a_full_rebuild(world, tmp_path):
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    catalog = load_catalog(world)
    with transaction(conn):
        write_source_series(conn, catalog)
    write(conn, daily_ten_year(10), datetime(2026, 1, 1))
    build(conn, datetime(2026, 1, 1, 0, 1))
    with transaction(conn):
        write_source_series(conn, [m for m in catalog if m.key != "DGS10"])
    rebuilt = build(conn, datetime(2026, 1, 2))
    assert rebuilt.recomputed_series is None and rebuilt.deleted == 10
    assert conn.execute("SELECT count(*) FROM observations").fetchone()[0] == 0
