"""The stages ``bench.scale`` measures on one synthetic warehouse, each beside its DuckDB floor.

Every stage returns ``{"seconds", "floor_seconds", "ratio", "samples", "floor_samples", "peak_rss_mib",
"floor_peak_rss_mib", ...}``: medians over rounds (gwm and floor alternate within a round so that
load on the machine hits both alike), and the resident-set growth over all rounds of a path
(:class:`bench.timing.PeakRss`). Opening files and copying warehouses are never timed.
"""

from __future__ import annotations

import datetime as dt
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from bench.canvas_build import COLUMNS, Case, duckdb_group_by, gwm_grids
from bench.canvas_build import gwm as gwm_canvas
from bench.scale_data import PROVENANCE, Synthetic
from bench.timing import PeakRss
from gwm_assets.observations.build import OBSERVATIONS_DDL, POINTS, build_observations, write_source_series
from gwm_assets.observations.quarantine import observations_suite
from gwm_assets.sources.base import FetchResult
from gwm_assets.sources.raw_tables import RAW_SPECS
from gwm_assets.sources.refresh import write_batch
from gwm_assets.validation.gx_runner import read_frame, validate
from gwm_assets.validation.ranges import load_ranges, write_field_ranges
from gwm_assets.warehouse.clock import utcnow
from gwm_assets.warehouse.connection import registered, transaction
from gwm_assets.warehouse.ledger import ensure_ledger

RUN_ID = "bench-scale"
OBS_COLUMNS = "field_path, ts, available_at, value, revised_value, source, source_key, provenance"


def _stage(samples: list[float], floor: list[float] | None, peak: dict[str, float], floor_peak: dict[str, float],
           **extra: object) -> dict[str, object]:
    seconds = statistics.median(samples)
    out: dict[str, object] = {"seconds": seconds, "samples": samples, "peak_rss_mib": peak["growth"],
                              "peak_rss_abs_mib": peak["peak"]}
    if floor:
        out |= {"floor_seconds": statistics.median(floor), "ratio": seconds / statistics.median(floor),
                "floor_samples": floor, "floor_peak_rss_mib": floor_peak["growth"]}
    return out | extra


def _alternate(rounds: int, gwm: Callable[[int], float], floor: Callable[[int], float] | None
               ) -> tuple[list[float], list[float], dict[str, float], dict[str, float]]:
    """Run both paths ``rounds`` times, alternating who goes first; each call returns its own seconds.

    Peaks: the largest resident-set growth of any one call of a path, and the highest mark it reached.
    """
    paths = {"gwm": gwm, "floor": floor} if floor else {"gwm": gwm}
    samples: dict[str, list[float]] = {name: [] for name in ("gwm", "floor")}
    peaks = {name: {"growth": 0.0, "peak": 0.0} for name in ("gwm", "floor")}
    for r in range(rounds):
        for name in (list(paths) if r % 2 == 0 else list(paths)[::-1]):
            with PeakRss() as peak:
                samples[name].append(paths[name](r))
            peaks[name] = {"growth": max(peaks[name]["growth"], peak.growth_mib),
                           "peak": max(peaks[name]["peak"], peak.peak_mib)}
    return samples["gwm"], samples["floor"], peaks["gwm"], peaks["floor"]


# --- full load ----------------------------------------------------------------------------------


def gwm_load(conn: duckdb.DuckDBPyConnection, tables: dict[str, pa.Table], now: dt.datetime) -> None:
    """gwm's path: one transaction, ``write_batch`` per raw table (upsert, provenance, quarantine)."""
    with transaction(conn):
        ensure_ledger(conn)
        for source, table in tables.items():
            write_batch(conn, source, [FetchResult(table)], PROVENANCE[source], RUN_ID, now)


def full_load(data: Synthetic, workdir: Path, rounds: int) -> tuple[dict[str, object], Path]:
    """gwm's load into a fresh file vs one INSERT ... SELECT per raw table (same DDL, same rows)."""
    prepared = {s: t.append_column("provenance", pa.array(np.full(t.num_rows, PROVENANCE[s].provenance_id)))
                for s, t in data.raw.items()}
    kept = workdir / "warehouse.duckdb"

    def fresh(name: str, write: Callable[[duckdb.DuckDBPyConnection], None]) -> float:
        path = workdir / f"{name}.duckdb"
        path.unlink(missing_ok=True)
        with duckdb.connect(str(path)) as conn:
            start = time.perf_counter()
            write(conn)
            seconds = time.perf_counter() - start
        return seconds

    def gwm(r: int) -> float:
        seconds = fresh("load-gwm", lambda conn: gwm_load(conn, data.raw, utcnow()))
        shutil.move(workdir / "load-gwm.duckdb", kept)
        return seconds

    def floor(r: int) -> float:
        def write(conn: duckdb.DuckDBPyConnection) -> None:
            now = utcnow()
            for source, table in prepared.items():
                spec = RAW_SPECS[source]
                conn.execute(spec.ddl())
                with registered(conn, "floor_incoming", table):
                    conn.execute(f"INSERT INTO {spec.name} SELECT *, ?, ? FROM floor_incoming", [now, now])
        seconds = fresh("load-floor", write)
        (workdir / "load-floor.duckdb").unlink()
        return seconds

    samples, floors, peak, floor_peak = _alternate(rounds, gwm, floor)
    with duckdb.connect(str(kept)) as conn:
        rows = sum(conn.execute(f"SELECT count(*) FROM {RAW_SPECS[s].name}").fetchone()[0] for s in data.raw)
        with transaction(conn):  # what the catalog and validation assets write before observations
            write_source_series(conn, data.mappings)
            write_field_ranges(conn, load_ranges(data.world))
    return _stage(samples, floors, peak, floor_peak, raw_rows=rows,
                  floor_method="per raw table: CREATE TABLE (the same DDL) + one INSERT ... SELECT from Arrow"), kept


# --- observations -------------------------------------------------------------------------------

# the observations of this catalog (level and scale transforms) in one statement: gwm's own per-source
# point queries, the mapping join, the transform and the publication time
FLOOR_OBSERVATIONS = f"""
INSERT INTO obs_floor
SELECT m.field, p.ts,
       coalesce(p.known_at, CAST(p.ts AS TIMESTAMP) + to_days(CAST(m.release_lag_days AS INTEGER))),
       CASE WHEN m.transform LIKE 'scale:%' THEN p.value * CAST(split_part(m.transform, ':', 2) AS DOUBLE)
            ELSE p.value END,
       CASE WHEN m.transform LIKE 'scale:%' THEN p.revised_value * CAST(split_part(m.transform, ':', 2) AS DOUBLE)
            ELSE p.revised_value END,
       p.vector, p.source, p.source_key, p.provenance, ?
FROM ({POINTS["raw_fred"].format(raw_fred="raw_fred")}
      UNION ALL {POINTS["raw_yahoo"].format(raw_yahoo="raw_yahoo")}) AS
     p(source, source_key, ts, value, revised_value, known_at, provenance, vector)
JOIN source_series m ON m.source = p.source AND m.key = p.source_key
WHERE m.transform = 'level' OR m.transform LIKE 'scale:%'"""


def observations_build(conn: duckdb.DuckDBPyConnection, rounds: int) -> dict[str, object]:
    """The first (full) build into an empty table, committed, vs :data:`FLOOR_OBSERVATIONS`."""
    def gwm(r: int) -> float:
        conn.execute("BEGIN TRANSACTION")
        conn.execute("DROP TABLE IF EXISTS observations")
        conn.execute("DROP TABLE IF EXISTS observations_state")
        start = time.perf_counter()
        build_observations(conn, utcnow(), full=True, run_id=RUN_ID)
        conn.execute("COMMIT")
        return time.perf_counter() - start

    def floor(r: int) -> float:
        conn.execute("BEGIN TRANSACTION")
        conn.execute("DROP TABLE IF EXISTS obs_floor")
        start = time.perf_counter()
        conn.execute(OBSERVATIONS_DDL.replace("IF NOT EXISTS observations", "obs_floor"))
        conn.execute(FLOOR_OBSERVATIONS, [utcnow()])
        conn.execute("COMMIT")
        return time.perf_counter() - start

    samples, floors, peak, floor_peak = _alternate(rounds, gwm, floor)
    rows = conn.execute("SELECT count(*) FROM observations").fetchone()[0]
    # the same rows: equal counts and equal order-independent checksums of every row
    ours, theirs = (conn.execute(f"SELECT count(*), sum(hash({OBS_COLUMNS})) FROM {t}").fetchone()
                    for t in ("observations", "obs_floor"))
    assert ours == theirs, f"the observations floor differs from gwm's build: {theirs} vs {ours}"
    conn.execute("DROP TABLE obs_floor")
    quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    return _stage(samples, floors, peak, floor_peak, observations_rows=rows, floor_rows_equal=True,
                  quarantined=quarantined,
                  floor_method="one INSERT ... SELECT: gwm's fred/yahoo point queries + mapping join + transform, "
                        "into the same table (same primary key)")


# --- one-day refresh ----------------------------------------------------------------------------


def one_day_refresh(data: Synthetic, warehouse: Path, workdir: Path, rounds: int) -> dict[str, object]:
    """Upsert one new day of every daily series + the incremental observations build, committed.

    Each round runs on a fresh copy of the full warehouse (the copy is not timed). The floor: a plain
    DuckDB INSERT of the same new raw rows (what the day's rows cost without any bookkeeping).
    """
    raw_s, obs_s, outcome = [], [], {}

    def gwm(r: int) -> float:
        copy = workdir / "refresh.duckdb"
        shutil.copyfile(warehouse, copy)
        with duckdb.connect(str(copy)) as conn:
            before = conn.execute("SELECT count(*) FROM observations").fetchone()[0]
            raw_before = conn.execute("SELECT (SELECT count(*) FROM raw_fred) + (SELECT count(*) FROM raw_yahoo)"
                                      ).fetchone()[0]
            start = time.perf_counter()
            conn.execute("BEGIN TRANSACTION")
            for source, table in data.increment.items():
                write_batch(conn, source, [FetchResult(table)], PROVENANCE[source], RUN_ID, utcnow())
            middle = time.perf_counter()
            load = build_observations(conn, utcnow(), run_id=RUN_ID)
            conn.execute("COMMIT")
            end = time.perf_counter()
            raw_s.append(middle - start)
            obs_s.append(end - middle)
            outcome.update(
                raw_rows_added=conn.execute("SELECT (SELECT count(*) FROM raw_fred) + (SELECT count(*) FROM raw_yahoo)"
                                            ).fetchone()[0] - raw_before,
                observations_added=conn.execute("SELECT count(*) FROM observations").fetchone()[0] - before,
                inserted=load.inserted, updated=load.updated, deleted=load.deleted,
                recomputed_series=load.recomputed_series)
        copy.unlink()
        return end - start

    def floor(r: int) -> float:
        copy = workdir / "refresh.duckdb"
        shutil.copyfile(warehouse, copy)
        with duckdb.connect(str(copy)) as conn:
            tables = {s: t.append_column("provenance", pa.array(np.full(t.num_rows, PROVENANCE[s].provenance_id)))
                      for s, t in data.increment.items()}
            start = time.perf_counter()
            now = utcnow()
            for source, table in tables.items():
                with registered(conn, "floor_incoming", table):
                    conn.execute(f"INSERT INTO {RAW_SPECS[source].name} SELECT *, ?, ? FROM floor_incoming",
                                 [now, now])
            seconds = time.perf_counter() - start
        copy.unlink()
        return seconds

    samples, floors, peak, floor_peak = _alternate(rounds, gwm, floor)
    out = _stage(samples, floors, peak, floor_peak, raw_upsert_seconds=statistics.median(raw_s),
                 observations_incremental_seconds=statistics.median(obs_s), raw_upsert_samples=raw_s,
                 observations_incremental_samples=obs_s, daily_series=data.daily_series,
                 floor_method="a plain INSERT of the day's raw rows (no upsert, no observations)", **outcome)
    out["floor_meaning"] = "ratio here: the refresh's fixed and bookkeeping cost over a bare insert"
    return out


# --- checks -------------------------------------------------------------------------------------


def checks(warehouse: Path, rounds: int, run_gx: bool = True) -> dict[str, object]:
    """The observations asset checks' path (frame read from DuckDB + GX validation + the quarantine
    query) vs one DuckDB aggregate computing every expectation's failing-row count on the same frame.

    ``run_gx=False``: only the floor runs (the GX path is projected by the caller)."""
    suite, now = observations_suite(), utcnow()
    start = time.perf_counter()
    import great_expectations  # noqa: F401 (paid once per check step; not part of the stage)
    gx_import = time.perf_counter() - start
    counts: dict[str, dict[str, int]] = {}
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        if run_gx:
            frame = conn.sql(f"SELECT * FROM ({suite.frame_sql(now)}) LIMIT 1000").df()
            validate(frame, suite)  # warm-up: GX's first context

        def gwm(r: int) -> float:
            start = time.perf_counter()
            frame = read_frame(conn, suite, now)
            outcomes = validate(frame, suite)
            conn.execute("SELECT check_name, count(*) FROM quarantine WHERE released_at IS NULL GROUP BY ALL"
                         ).fetchall()
            seconds = time.perf_counter() - start
            counts["gx"] = {o.expectation.name: o.unexpected_count for o in outcomes}
            counts["rows"] = {"rows": len(frame)}
            return seconds

        terms, names = [], []
        for e in suite.expectations:
            if e.expect == "expect_compound_columns_to_be_unique":
                cols = ", ".join(e.kwargs["column_list"])
                terms.append(f"count(*) - count(DISTINCT ({cols}))")
            elif e.expect == "expect_table_row_count_to_be_between":
                continue
            else:
                terms.append(f"count(*) FILTER (NOT {e.sql_pass()})")
            names.append(e.name)
        floor_sql = f"SELECT {', '.join(terms)} FROM ({suite.frame_sql(now)})"

        def floor(r: int) -> float:
            start = time.perf_counter()
            row = conn.execute(floor_sql).fetchone()
            counts["sql"] = dict(zip(names, row, strict=True))
            return time.perf_counter() - start

        if not run_gx:
            floors, _, floor_peak, _ = _alternate(rounds, floor, None)
            return {"seconds": None, "floor_seconds": statistics.median(floors), "floor_samples": floors,
                    "floor_peak_rss_mib": floor_peak["growth"], "failing_rows": sum(counts["sql"].values()),
                    "expectations": len(suite.expectations)}
        samples, floors, peak, floor_peak = _alternate(rounds, gwm, floor)
    gx = {n: counts["gx"][n] for n in names}
    assert gx == counts["sql"], f"GX and the SQL floor disagree: {gx} vs {counts['sql']}"
    return _stage(samples, floors, peak, floor_peak, rows_validated=counts["rows"]["rows"],
                  expectations=len(suite.expectations), failing_rows=sum(gx.values()), gx_import_s=gx_import,
                  floor_method="one aggregate over the suite's frame: each expectation's failing rows")


# --- canvas -------------------------------------------------------------------------------------


def canvas(data: Synthetic, warehouse: Path, rounds: int) -> dict[str, object]:
    """``build_canvas`` of ``full_integration`` (weekly, the curriculum's) vs the DuckDB GROUP BY floor."""
    start = time.perf_counter()
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        observations = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM observations").to_arrow_table()
    read_s = time.perf_counter() - start
    first = min(observations["ts"].to_numpy())
    projection = data.world.project(["*"])
    con = duckdb.connect()
    case = Case(observations, "weekly", con, projection=projection, start=max(dt.date(1990, 1, 1), first))
    start = time.perf_counter()
    ours = gwm_grids(case)  # the first build packs the layout (remembered per projection)
    first_build = time.perf_counter() - start
    floors = {"duckdb_group_by": None, "duckdb_group_by_1_thread": 1}

    def floor_run(threads: int | None) -> object:
        con.execute("RESET threads" if threads is None else f"SET threads = {threads}")
        return duckdb_group_by(case)

    base = floor_run(None)
    assert np.array_equal(ours.presence, base.presence), "presence differs: gwm vs the DuckDB floor"
    assert np.array_equal(ours.available_us, base.available_us), "available_at differs: gwm vs the DuckDB floor"
    expected = np.where(ours.presence, (np.nan_to_num(base.raw) - ours.mean) / ours.std, 0.0).astype(np.float32)
    assert np.array_equal(ours.values, expected), "gwm's values are not the floor's values, normalised"
    floor_times: dict[str, list[float]] = {}

    def gwm(r: int) -> float:
        start = time.perf_counter()
        gwm_canvas(case)
        return time.perf_counter() - start

    def floor(r: int) -> float:
        times = {}
        for name, threads in floors.items():
            start = time.perf_counter()
            floor_run(threads)
            times[name] = time.perf_counter() - start
            floor_times.setdefault(name, []).append(times[name])
        return min(times.values())

    samples, floor_samples, peak, floor_peak = _alternate(rounds, gwm, floor)
    con.close()
    fastest = min(floor_times, key=lambda n: statistics.median(floor_times[n]))
    medians = {n: statistics.median(s) for n, s in floor_times.items()}
    return _stage(samples, floor_times[fastest], peak, floor_peak, floor_variant=fastest,
                  floor_medians=medians, first_build_s=first_build, read_observations_s=read_s,
                  observations_rows=observations.num_rows, steps=len(case.axis), fields=len(case.paths),
                  fields_with_data=int(ours.presence.any(axis=0).sum()), cells_present=int(ours.presence.sum()),
                  presence_equal=True, available_at_equal=True, normalised_values_equal=True,
                  floor_method="DuckDB GROUP BY (field, step) with the first-published order + numpy scatter into the "
                        "(T, F) grids; the faster of default threads and one thread")

