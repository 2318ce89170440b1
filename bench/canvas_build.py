"""The `full_integration` canvas from the embedded default, against a pandas and a DuckDB baseline.

Input for every path: the warehouse's ``observations`` table as one Arrow table (read once, not
timed), the ``full_integration`` projection (``*``: 1107 fields), a time axis from 1990-01-01 to the
last observation date (weekly, as the curriculum builds it, and business-day) and ``train_end`` 80%
along it (the curriculum's ``train_fraction``).

- gwm: ``build_canvas`` end to end, Arrow in, ``Canvas`` out (first-published rule, as-of alignment
  keeping the last observation of each step, training-only normalisation, ``(T, S)`` values,
  ``(T, F)`` presence and publication times). Its default layout is packed once per projection
  and remembered, so ``pack_layout_s`` is reported separately: the first build of a projection in
  a process pays it once (``gwm_first_build_*``). ``gwm_asset_call`` is the call the canvases asset
  makes: each embedding field declared with 384 slots (``S`` = 16810 instead of 1107), which no
  baseline reproduces.
- pandas: sort + ``drop_duplicates`` (first published), ``pivot_table(aggfunc="last")`` by
  (step, field) + ``reindex`` to the whole axis and every field, the same normalisation.
- DuckDB floor: one query into Arrow that returns each (field, step)'s last observation by the
  first-published rule, plus the numpy scatter into the same ``(T, F)`` grids (no normalisation).
  Two forms, each with DuckDB's default thread count and with one thread: a ``PIVOT`` (one column
  pair per field) and the equivalent ``GROUP BY`` (one row per cell). The floor is the fastest.

Every path must give the same grids, and the bench asserts it: presence and publication times
equal everywhere, raw values equal between the baselines, gwm's normalised values equal to the
baseline's raw values normalised with gwm's statistics, and gwm's statistics equal to pandas'
(to 1e-9). Timings are medians of rounds that run every path once, in turn, so load on the machine
hits them alike. Peak memory: each path (the DuckDB floor: its fastest variant) runs in a fresh
interpreter, once to warm up and then once measured. ``peak_rss_mib`` is the resident-set
high-water mark of that run minus the resident set before it (the mark is reset through
``/proc/self/clear_refs``): it counts native allocations (Polars, Arrow, DuckDB) as well as numpy,
and only pages actually touched. ``tracemalloc_peak_mib`` is the peak that tracemalloc sees (Python
objects and numpy buffers, counted in full when allocated). Both include the result held at the end.
Targets: gwm at least 5x faster than pandas and within 1.5x of the DuckDB floor.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench.ingest import ITEMS, write_grouped
from bench.timing import median_seconds
from gwm_assets.observations.build import build_observations, write_source_series
from gwm_assets.sources.catalog import load_catalog
from gwm_assets.validation.ranges import load_ranges, write_field_ranges
from gwm_assets.warehouse.clock import utcnow
from gwm_assets.warehouse.connection import transaction
from gwm_assets.warehouse.ledger import ensure_ledger
from gwm_model.canvas import build_canvas, make_time_axis, pack_layout
from gwm_model.canvas.canvas import ABSENT
from gwm_model.schema import Projection, default_world

START, TRAIN_FRACTION, EMBEDDING_SLOTS = "1990-01-01", 0.8, 384
FREQUENCIES = ("weekly", "business")
ROUNDS = 9
COLUMNS = ["field_path", "ts", "available_at", "value", "vector", "source", "source_key"]


def observations_table() -> pa.Table:
    """The embedded default's ``observations`` (a temporary warehouse built as bench.checks does)."""
    world = default_world()
    loaded = [(item, item.load()) for item in ITEMS]
    with tempfile.TemporaryDirectory(prefix="gwm-bench-canvas-") as workdir:
        with duckdb.connect(str(Path(workdir) / "w.duckdb")) as conn, transaction(conn):
            ensure_ledger(conn)
            write_grouped(conn, loaded)
            write_source_series(conn, load_catalog(world))
            write_field_ranges(conn, load_ranges(world))
            build_observations(conn, utcnow())
            return conn.execute(f"SELECT {', '.join(COLUMNS)} FROM observations").to_arrow_table()


@dataclass
class Case:
    observations: pa.Table
    frequency: str
    con: duckdb.DuckDBPyConnection | None = None
    projection: Projection | None = None  # default: the packaged world's ``*``
    start: str | dt.date = START

    def __post_init__(self) -> None:
        if self.projection is None:
            self.projection = default_world().project(["*"])
        self.paths = list(self.projection.paths)
        last = pc.max(self.observations["ts"]).as_py()
        self.axis = make_time_axis(self.start, last, self.frequency)
        self.train_end = self.axis.starts[int(len(self.axis) * TRAIN_FRACTION) - 1].astype(dt.date)
        self.vector_slots = {f.path: EMBEDDING_SLOTS for f in self.projection.fields if f.unit == "embedding"}
        if self.con is None:
            self.con = duckdb.connect()
        self.con.register("obs", self.observations)


@dataclass
class Grids:
    """What every path yields: raw values (NaN where absent), presence, publication times; normalised
    values and statistics where the path normalises."""

    raw: np.ndarray | None
    presence: np.ndarray
    available_us: np.ndarray
    values: np.ndarray | None = None
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    count: np.ndarray | None = None


# --- gwm --------------------------------------------------------------------------------------


def gwm(case: Case):
    return build_canvas(case.observations, case.projection, case.axis, case.train_end)


def gwm_asset_call(case: Case):
    return build_canvas(case.observations, case.projection, case.axis, case.train_end,
                        vector_slots=case.vector_slots)


def gwm_grids(case: Case) -> Grids:
    canvas = gwm(case)
    stats = canvas.stats
    return Grids(None, canvas.presence, canvas.available_us, canvas.values,
                 np.array([stats.mean[p] for p in case.paths]), np.array([stats.std[p] for p in case.paths]),
                 np.array([stats.count[p] for p in case.paths]))


# --- pandas -----------------------------------------------------------------------------------


def pandas_baseline(case: Case) -> Grids:
    T, end_day = len(case.axis), np.datetime64(case.train_end, "D")
    known_by = (end_day + np.timedelta64(1, "D")).astype("datetime64[us]").astype(np.int64)
    df = case.observations.select(["field_path", "ts", "available_at", "value", "source", "source_key"]
                                  ).to_pandas(date_as_object=False)
    df = df[df["field_path"].isin(case.paths)]
    df = df.sort_values(["field_path", "ts", "available_at", "source", "source_key"])
    df = df.drop_duplicates(["field_path", "ts"], keep="first")  # first published wins
    df = df[np.isfinite(df["value"].to_numpy())]
    day = df["ts"].to_numpy().astype("datetime64[D]")
    df = df.assign(step=case.axis.step_of(day), day=day.astype(np.int64),
                   available_us=df["available_at"].to_numpy().astype("datetime64[us]").astype(np.int64))
    df = df[df["step"] >= 0]
    # sorted by date within each field, so "last" is the step's latest observation
    wide = df.pivot_table(index="step", columns="field_path", values=["value", "available_us", "day"],
                          aggfunc="last")
    value = wide["value"].reindex(index=range(T), columns=case.paths)
    presence = value.notna()
    available = wide["available_us"].reindex(index=range(T), columns=case.paths)
    day = wide["day"].reindex(index=range(T), columns=case.paths)
    train = presence & (day <= end_day.astype(np.int64)) & (available < known_by)
    cells = value.where(train)
    count = train.sum()
    mean, std = cells.mean().fillna(0.0), cells.std(ddof=0).fillna(1.0)
    std = std.where(std > 1e-9 * np.maximum(1.0, mean.abs()), 1.0)
    values = ((value - mean) / std).where(presence, 0.0).to_numpy(dtype=np.float32)
    present = presence.to_numpy()
    published = np.where(present, available.to_numpy(na_value=0.0), 0.0).astype(np.int64)  # exact: < 2**53 µs
    published[~present] = ABSENT
    return Grids(value.to_numpy(), present, published, values, mean.to_numpy(), std.to_numpy(), count.to_numpy())


# --- DuckDB floor -----------------------------------------------------------------------------

# the step's last date, then the first published (then source, source_key): the order gwm applies
ORDER = "ORDER BY o.ts DESC, o.available_at, o.source, o.source_key"
PICKED = f"first(o.value {ORDER}) AS v, first(epoch_us(o.available_at) {ORDER}) AS a"


def _inputs(case: Case) -> None:
    """The projection's fields and the axis as a day -> step calendar, for the query to join."""
    axis = case.axis
    days = np.arange(axis.starts[0], axis.ends[-1], dtype="datetime64[D]")
    case.con.register("fields", pa.table({"path": case.paths, "idx": np.arange(len(case.paths), dtype=np.int32)}))
    case.con.register("calendar", pa.table({"day": days, "step": axis.step_of(days).astype(np.int32)}))


def duckdb_group_by(case: Case) -> Grids:
    _inputs(case)
    table = case.con.execute(f"""
        SELECT f.idx, c.step, {PICKED}
        FROM obs o JOIN fields f ON o.field_path = f.path JOIN calendar c ON o.ts = c.day
        WHERE isfinite(o.value) GROUP BY ALL""").to_arrow_table()
    T, F = len(case.axis), len(case.paths)
    step, idx = table["step"].to_numpy(), table["idx"].to_numpy()
    raw, presence = np.full((T, F), np.nan), np.zeros((T, F), dtype=bool)
    available = np.full((T, F), ABSENT, dtype=np.int64)
    raw[step, idx] = table["v"].to_numpy()
    presence[step, idx] = True
    available[step, idx] = table["a"].to_numpy()
    return Grids(raw, presence, available)


def duckdb_pivot(case: Case) -> Grids:
    _inputs(case)
    table = case.con.execute(f"""
        PIVOT (SELECT o.*, c.step FROM obs o JOIN calendar c ON o.ts = c.day
               SEMI JOIN fields f ON o.field_path = f.path WHERE isfinite(o.value))
        ON field_path USING {PICKED.replace("o.", "")} GROUP BY step""").to_arrow_table()
    T, F = len(case.axis), len(case.paths)
    steps = table["step"].to_numpy()
    raw, presence = np.full((T, F), np.nan), np.zeros((T, F), dtype=bool)
    available = np.full((T, F), ABSENT, dtype=np.int64)
    index = case.projection.index_of
    for name in table.column_names[1:]:
        if name.endswith("_v"):
            i, column = index[name[:-2]], table[name]
            raw[steps, i] = column.to_numpy(zero_copy_only=False)
            presence[steps, i] = column.is_valid().to_numpy(zero_copy_only=False)
            available[steps, i] = pc.fill_null(table[name[:-2] + "_a"], ABSENT).to_numpy()
    return Grids(raw, presence, available)


def _threads(fn: Callable[[Case], Grids], threads: int | None) -> Callable[[Case], Grids]:
    def run(case: Case) -> Grids:
        case.con.execute("RESET threads" if threads is None else f"SET threads = {threads}")
        return fn(case)
    return run


FLOORS = {"duckdb_group_by": _threads(duckdb_group_by, None), "duckdb_group_by_1_thread": _threads(duckdb_group_by, 1),
          "duckdb_pivot": _threads(duckdb_pivot, None), "duckdb_pivot_1_thread": _threads(duckdb_pivot, 1)}
PATHS: dict[str, Callable[[Case], object]] = {"gwm": gwm, "gwm_asset_call": gwm_asset_call,
                                               "pandas": pandas_baseline, **FLOORS}


# --- checks, timing, memory -------------------------------------------------------------------


def check_same(case: Case) -> dict[str, object]:
    """Assert that every path computes the same canvas; returns what was compared."""
    ours, panda = gwm_grids(case), pandas_baseline(case)
    floors = {name: fn(case) for name, fn in FLOORS.items()}
    for name, other in {"pandas": panda, **floors}.items():
        assert np.array_equal(ours.presence, other.presence), f"presence differs: gwm vs {name}"
        assert np.array_equal(ours.available_us, other.available_us), f"available_at differs: gwm vs {name}"
        assert np.array_equal(np.isnan(other.raw), ~other.presence), name
        assert np.array_equal(other.raw[other.presence], panda.raw[panda.presence]), f"values: {name} vs pandas"
    expected = np.where(ours.presence, (np.nan_to_num(panda.raw) - ours.mean) / ours.std, 0.0).astype(np.float32)
    assert np.array_equal(ours.values, expected), "gwm values are not the baseline's values, normalised"
    assert np.array_equal(ours.count, panda.count), "training cell counts differ"
    np.testing.assert_allclose(ours.mean, panda.mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.std, panda.std, rtol=1e-9)
    np.testing.assert_allclose(ours.values, panda.values, rtol=0, atol=1e-5)
    return {"cells_present": int(ours.presence.sum()), "fields_with_data": int(ours.presence.any(axis=0).sum()),
            "presence_equal": True, "available_at_equal": True, "raw_values_equal": True,
            "normalised_values_equal": True, "stats_rtol": 1e-9}


def interleaved_medians(case: Case, paths: dict[str, Callable[[Case], object]], rounds: int) -> dict[str, float]:
    for fn in paths.values():  # warm-up
        fn(case)
    samples: dict[str, list[float]] = {name: [] for name in paths}
    names = list(paths)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate who goes first
            start = time.perf_counter()
            paths[name](case)
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in samples.items()}


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def measure_peak(ipc_path: str, frequency: str, path: str) -> dict[str, object]:
    """In a fresh interpreter: the peak memory of one run of ``path`` (after a warm-up run)."""
    observations = pa.ipc.open_file(ipc_path).read_all()
    case, fn = Case(observations, frequency), PATHS[path]
    fn(case)
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the RSS high-water mark
        method, before = "VmHWM after /proc/self/clear_refs, minus VmRSS before", _status_kib("VmRSS")
    except OSError:
        method, before = "ru_maxrss growth (the mark cannot be reset here)", resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss
    result = fn(case)
    peak = _status_kib("VmHWM") if method.startswith("VmHWM") else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del result
    gc.collect()
    tracemalloc.start()
    result = fn(case)  # noqa: F841 (held, like the result measured above)
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"peak_rss_mib": (peak - before) / 1024, "tracemalloc_peak_mib": traced / 2**20, "rss_method": method}


def peak_in_subprocess(ipc_path: Path, frequency: str, path: str) -> dict[str, object]:
    code = (f"import json; from bench.canvas_build import measure_peak; "
            f"print(json.dumps(measure_peak({str(ipc_path)!r}, {frequency!r}, {path!r})))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run() -> dict[str, object]:
    observations = observations_table()
    with tempfile.TemporaryDirectory(prefix="gwm-bench-canvas-") as workdir:
        ipc_path = Path(workdir) / "observations.arrow"
        with pa.ipc.new_file(ipc_path, observations.schema) as writer:
            writer.write_table(observations)
        return _run(observations, ipc_path)


def _run(observations: pa.Table, ipc_path: Path) -> dict[str, object]:
    con = duckdb.connect()
    report: dict[str, object] = {"observations_rows": observations.num_rows}
    for frequency in FREQUENCIES:
        case = Case(observations, frequency, con)
        checked = check_same(case)
        times = interleaved_medians(case, PATHS, ROUNDS)
        layout_s = median_seconds(partial(pack_layout, case.projection), repeats=5)
        floor_name = min(FLOORS, key=times.__getitem__)
        floor = times[floor_name]
        memory = {name: peak_in_subprocess(ipc_path, frequency, name)
                  for name in ("gwm", "gwm_asset_call", "pandas", floor_name)}
        report[frequency] = {
            "steps": len(case.axis), "fields": len(case.paths), "slots_asset_call": len(case.paths) - len(
                case.vector_slots) + EMBEDDING_SLOTS * len(case.vector_slots),
            "axis": f"{case.axis.starts[0]} .. {case.axis.starts[-1]}", "train_end": str(case.train_end),
            "same_result": checked,
            "median_s": {**times, "pack_layout_s": layout_s},
            "duckdb_floor": {"variant": floor_name, "seconds": floor},
            "gwm_vs_pandas_speedup": {"value": times["pandas"] / times["gwm"], "target": 5.0,
                                      "met": times["pandas"] / times["gwm"] >= 5.0},
            "gwm_vs_duckdb_floor_ratio": {"value": times["gwm"] / floor, "target": 1.5,
                                          "met": times["gwm"] / floor <= 1.5},
            "gwm_first_build_vs_pandas_speedup": times["pandas"] / (times["gwm"] + layout_s),
            "gwm_first_build_vs_duckdb_floor_ratio": (times["gwm"] + layout_s) / floor,
            "peak_memory": memory,
        }
    con.close()
    return report

