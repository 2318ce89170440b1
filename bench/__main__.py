"""`python -m bench`: run every benchmark and write bench/results/bench.json."""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

from bench import canvas_build, checks, curriculum, ingest, schema_compile, training

BENCHMARKS = {"schema_compile": schema_compile.run, "ingest": ingest.run, "checks": checks.run,
              "canvas_build": canvas_build.run, "training": training.run,
              "curriculum": curriculum.run}


def main() -> int:
    report = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python": sys.version.split()[0],
              "machine": platform.machine(), "processor_count": __import__("os").cpu_count(), "results": {}}
    only = sys.argv[1:]  # `python -m bench training` runs one benchmark
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
