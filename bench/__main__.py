"""`python -m bench [name ...]`: run every benchmark (or the named ones) and write bench/results/bench.json.

`make bench` runs them all; `make bench scale` runs only ``scale``. Run with every benchmark, ``scale``
stops at 1 M rows unless ``GWM_SCALE_ROWS`` says otherwise (run alone it goes to 10 M rows), and ``skill``
runs two seeds unless ``GWM_BENCH_SKILL_VARIANTS`` says otherwise (run alone: three seeds and two splits).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

from bench import canvas_build, checks, curriculum, ingest, scale, schema_compile, skill, text_embedding, training

BENCHMARKS = {"schema_compile": schema_compile.run, "ingest": ingest.run, "checks": checks.run,
              "canvas_build": canvas_build.run, "text_embedding": text_embedding.run, "training": training.run,
              "curriculum": curriculum.run, "scale": scale.run, "skill": skill.run}
ALL_SCALE_ROWS = "100000,1000000"  # scale's sizes when every benchmark runs (10 M rows take minutes more)
ALL_SKILL_VARIANTS = "seed0,seed1"  # skill's variants when every benchmark runs (each is a whole curriculum)


def main() -> int:
    report = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python": sys.version.split()[0],
              "machine": platform.machine(), "processor_count": os.cpu_count(), "results": {}}
    only = sys.argv[1:]  # `python -m bench training` runs one benchmark
    unknown = [name for name in only if name not in BENCHMARKS]
    if unknown:
        print(f"bench: unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    if not only:
        os.environ.setdefault("GWM_SCALE_ROWS", ALL_SCALE_ROWS)
        os.environ.setdefault("GWM_BENCH_SKILL_VARIANTS", ALL_SKILL_VARIANTS)
    for name, run in BENCHMARKS.items():
        if only and name not in only:
            continue
        print(f"bench {name} ...", flush=True)
        report["results"][name] = run()
        print(json.dumps(report["results"][name], indent=2))
    out = Path(__file__).parent / "results" / "bench.json"
    out.parent.mkdir(exist_ok=True)
    if only and out.exists():  # one benchmark re-run: keep the others' last results
        report["results"] = {**json.loads(out.read_text()).get("results", {}), **report["results"]}
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
