"""`make bench scale` at a tiny size: the synthetic warehouse, the stages it times, and what they assert.

Also the incremental observations build that the scale fix touched: a changed series whose previous
point lies further back than the look-back window still gets its transform from that point.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import duckdb
import pyarrow as pa
import pytest

from bench import scale
from bench.scale_data import END, NEXT_DAY, generate
from gwm_assets.observations.build import PREV_WINDOW_DAYS, build_observations, write_source_series
from gwm_assets.sources import fred
from gwm_assets.sources.base import FetchResult
from gwm_assets.sources.catalog import SeriesMapping
from gwm_assets.sources.refresh import write_batch
from gwm_assets.warehouse.connection import transaction
from gwm_assets.warehouse.ledger import Provenance

ROWS, SERIES = 20_000, 50


def test_generator_is_exact_and_deterministic(tmp_path):
    a, b = generate(ROWS, SERIES, tmp_path / "a"), generate(ROWS, SERIES, tmp_path / "b")
    assert sum(t.num_rows for t in a.raw.values()) == ROWS
    assert all(a.raw[s].equals(b.raw[s]) for s in a.raw)  # seeded: the same rows every time
    keys = set(a.raw["fred"]["series_id"].to_pylist()) | set(a.raw["yahoo"]["ticker"].to_pylist())
    assert len(keys) == SERIES == len(a.mappings) == len({m.field for m in a.mappings})
    assert all(m.field in a.world for m in a.mappings)
    assert max(a.raw["fred"]["date"].to_pylist()) == END
    new = {s: t["date"].to_pylist() for s, t in a.increment.items()}
    assert {d for days in new.values() for d in days} == {NEXT_DAY}
    assert sum(len(v) for v in new.values()) == a.daily_series == 30


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("scale")
    return scale.run_size(ROWS, SERIES, rounds=1, workdir=workdir, log=lambda *_: None), workdir


def test_every_stage_is_timed_beside_its_floor(report):
    result, _ = report
    assert set(result["stages"]) == set(scale.STAGES)
    for name, stage in result["stages"].items():
        assert stage["seconds"] > 0 and stage["floor_seconds"] > 0, name
        assert stage["ratio"] == pytest.approx(stage["seconds"] / stage["floor_seconds"]), name
        assert stage["peak_rss_mib"] >= 0 and stage["peak_rss_abs_mib"] > 0, name
    assert set(result["targets"]) >= {"one_day_refresh_raw", "one_day_refresh_end_to_end", "canvas_vs_duckdb_floor"}


def test_warehouse_holds_the_requested_rows_and_series(report):
    result, workdir = report
    with duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True) as conn:
        raw, series = conn.execute("""SELECT sum(n), sum(k) FROM (
            SELECT count(*) AS n, count(DISTINCT series_id) AS k FROM raw_fred UNION ALL
            SELECT count(*), count(DISTINCT ticker) FROM raw_yahoo)""").fetchone()
        observations, fields = conn.execute("SELECT count(*), count(DISTINCT field_path) FROM observations").fetchone()
    assert (raw, series) == (ROWS, SERIES)
    assert (observations, fields) == (ROWS, SERIES)  # nothing quarantined, one field per series
    assert result["stages"]["full_load"]["raw_rows"] == ROWS
    assert result["stages"]["observations_full_build"]["observations_rows"] == ROWS
    assert result["stages"]["observations_full_build"]["floor_rows_equal"]


def test_one_day_refresh_adds_one_row_per_daily_series(report):
    result, _ = report
    refresh = result["stages"]["one_day_refresh"]
    daily = result["daily_series"]
    assert daily == 30
    assert refresh["raw_rows_added"] == refresh["observations_added"] == refresh["inserted"] == daily
    assert refresh["recomputed_series"] == daily and refresh["updated"] == refresh["deleted"] == 0
    parts = [a + b for a, b in zip(refresh["raw_upsert_samples"], refresh["observations_incremental_samples"],
                                   strict=True)]
    assert refresh["samples"] == pytest.approx(parts)  # each round: the raw upsert, then the incremental build


def test_checks_and_canvas_agree_with_their_floors(report):
    result, _ = report
    checks, canvas = result["stages"]["checks"], result["stages"]["canvas_full_integration"]
    assert checks["rows_validated"] == ROWS and checks["failing_rows"] == 0
    assert canvas["presence_equal"] and canvas["available_at_equal"] and canvas["normalised_values_equal"]
    assert canvas["fields_with_data"] == SERIES and canvas["observations_rows"] == ROWS
    assert canvas["cells_present"] > 0


def test_growth_compares_the_largest_size_with_the_smallest():
    def size(rows, seconds):
        return {"stages": {n: {"seconds": seconds, "floor_seconds": seconds / 2, "ratio": 2.0,
                               "us_per_row": 1e6 * seconds / rows, "peak_rss_mib": 1.0} for n in scale.STAGES}}
    out = scale.growth({1000: size(1000, 1.0), 100_000: size(100_000, 100.0)})
    assert out["canvas_full_integration"]["time_ratio"] == pytest.approx(100.0)
    assert out["canvas_full_integration"]["exponent"] == pytest.approx(1.0)  # linear


PROV = Provenance("test:fred", "fred", "test", "test", "test")


def _write(conn, rows, now):
    with transaction(conn):
        write_batch(conn, "fred", [FetchResult(pa.Table.from_pylist(rows, schema=fred.ARROW_SCHEMA))], PROV, "r", now)


def test_incremental_diff_after_a_gap_longer_than_the_window_matches_a_full_build(world, tmp_path):
    """The previous point of a changed series lies beyond PREV_WINDOW_DAYS: found by the fallback."""
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    field = next(f.path for f in world.leaves if f.unit == "index")
    with transaction(conn):
        write_source_series(conn, [SeriesMapping("fred", "GAPPY", field, "diff", "daily", 0)])
    old = [{"series_id": "GAPPY", "date": date(2020, 1, 1) + timedelta(days=i), "realtime_start": None,
            "realtime_end": None, "value": 10.0 + i} for i in range(5)]
    _write(conn, old, datetime(2026, 1, 1))
    with transaction(conn):
        build_observations(conn, datetime(2026, 1, 1, 0, 1))
    later = date(2020, 1, 5) + timedelta(days=PREV_WINDOW_DAYS + 30)
    _write(conn, [{"series_id": "GAPPY", "date": later, "realtime_start": None, "realtime_end": None,
                   "value": 20.0}], datetime(2026, 1, 2))
    with transaction(conn):
        step = build_observations(conn, datetime(2026, 1, 2, 0, 1))
    assert step.recomputed_series == 1 and step.inserted == 1
    snapshot = "SELECT ts, value, available_at FROM observations ORDER BY ts"
    incremental = conn.execute(snapshot).fetchall()
    assert incremental[-1][:2] == (later, 20.0 - 14.0)  # the diff from 2020-01-05's 14.0, across the gap
    with transaction(conn):
        build_observations(conn, datetime(2026, 1, 3), full=True)
    assert conn.execute(snapshot).fetchall() == incremental
