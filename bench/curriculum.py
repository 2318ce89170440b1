"""The whole 12-node curriculum (trunk included) under Dagster's multiprocess executor against the
in-process executor, on the canvases of the embedded default, and the merge time of every join.

Input: the warehouse and canvases `make run` leaves in ``warehouse/`` (copied to a temporary
directory, so nothing of the project's own state changes). Each round materializes ``group:training``
with ``dagster asset materialize`` and ``force: true`` (every node retrains) three ways:
``multiprocess`` (``max_concurrent`` = the core count, each training step taking its share of the
cores, re-balanced as steps start and finish: the default, ``torch_threads: 0``),
``multiprocess_one_thread`` (the same with one torch thread per process, the previous default) and
``in_process`` (one process, all cores); the order rotates between rounds. Wall time is the CLI's,
start-up included. Merge times come from the join nodes' manifests: the merge itself (``merge_ms``)
and the merge-quality measures on the parents' validation windows (``quality_s``). Rounds:
``GWM_BENCH_DAG_ROUNDS`` (default 1: one full DAG takes minutes on two cores); medians over rounds.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gwm_assets.resources.paths import PACKAGE_ROOT, canvases_dir, warehouse_path

MULTI = {"multiprocess": {"max_concurrent": os.cpu_count() or 2}}
EXECUTORS = {"multiprocess": (MULTI, 0),                    # the default: the cores shared between running steps
             "multiprocess_one_thread": (MULTI, 1),         # one torch thread per process, whatever runs beside it
             "in_process": ({"in_process": {}}, 0)}


def _materialize(home: Path, warehouse: Path, executor: str) -> float:
    execution, threads = EXECUTORS[executor]
    config = {"execution": {"config": execution},
              "resources": {"training": {"config": {"force": True, "torch_threads": threads,
                                                     "checkpoints_path": str(warehouse.parent / "checkpoints")}}}}
    (home / "run.yaml").write_text(json.dumps(config))
    env = {**os.environ, "DAGSTER_HOME": str(home), "GWM_WAREHOUSE": str(warehouse)}
    started = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m",
                           "gwm_assets.definitions", "--select", "group:training", "-c", str(home / "run.yaml")],
                          env=env, cwd=PACKAGE_ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"bench curriculum: the {executor} run failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return seconds


def run() -> dict[str, object]:
    source = warehouse_path()
    if not (canvases_dir(source) / "full_integration").exists():
        raise RuntimeError(f"bench curriculum needs the canvases of `make run` in {canvases_dir(source)}")
    rounds = int(os.environ.get("GWM_BENCH_DAG_ROUNDS", "1"))
    times: dict[str, list[float]] = {name: [] for name in EXECUTORS}
    with tempfile.TemporaryDirectory(prefix="gwm-bench-dag-") as tmp:
        root = Path(tmp)
        warehouse = root / "warehouse" / "gwm.duckdb"
        warehouse.parent.mkdir()
        shutil.copy(source, warehouse)
        shutil.copytree(canvases_dir(source), canvases_dir(warehouse))
        home = root / "dagster_home"
        home.mkdir()
        shutil.copy(PACKAGE_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
        for r in range(rounds):
            names = list(EXECUTORS)
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                print(f"bench curriculum: round {r + 1}/{rounds}, {name} ...", flush=True)
                times[name].append(_materialize(home, warehouse, name))
        manifests = {d.name: json.loads((d / "manifest.json").read_text())
                     for d in (warehouse.parent / "checkpoints").iterdir() if (d / "manifest.json").exists()}
    joins = {n: m["merge"] for n, m in manifests.items() if len(m.get("node", {}).get("parents", [])) > 1}
    medians = {n: statistics.median(t) for n, t in times.items()}
    return {
        "rounds": rounds, "cores": os.cpu_count(), **{f"{n}_s": v for n, v in medians.items()},
        "speedup_multiprocess_vs_in_process": medians["in_process"] / medians["multiprocess"],
        "speedup_multiprocess_one_thread_vs_in_process": medians["in_process"] / medians["multiprocess_one_thread"],
        "speedup_multiprocess_vs_one_thread": medians["multiprocess_one_thread"] / medians["multiprocess"],
        "all_runs_s": times,
        "merge_ms_per_join": {n: 1000 * j["report"]["seconds"] for n, j in joins.items()},
        "merge_quality_s_per_join": {n: (j.get("quality") or {}).get("seconds") for n, j in joins.items()},
        "node_seconds_last_run": {n: m.get("seconds") for n, m in manifests.items()},
        "profile": next(iter(manifests.values())).get("profile") if manifests else None,
    }
