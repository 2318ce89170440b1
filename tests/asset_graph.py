"""The asset graph of ``gwm_assets.definitions`` as plain data, for the snapshot test.

Every asset key with its group, kinds, pool, dependencies and checks; every asset check with the asset it checks,
whether it blocks, and the automation of both; the jobs, schedules and sensors by name with what they
target. Written as sorted JSON so a change to the graph is a readable diff of ``tests/snapshots/asset_graph.json``.

Regenerate (after reviewing the change): ``.venv/bin/python -m tests.asset_graph --write``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


def _condition(condition) -> str | None:
    return None if condition is None else (condition.get_label() or type(condition).__name__)


def asset_graph() -> dict:
    from gwm_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "pools": sorted(node.pools or ()),
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "automation": _condition(node.automation_condition),
            "code_version": node.code_version,
            "checks": sorted(k.name for k in node.check_keys),
        }
    checks = {}
    for check_key in sorted(graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        spec = graph.get_check_spec(check_key)
        checks[f"{check_key.asset_key.to_user_string()}:{check_key.name}"] = {
            "blocking": spec.blocking, "automation": _condition(spec.automation_condition)}
    jobs = sorted(job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__"))
    schedules = {s.name: {"job": s.job_name, "cron": s.cron_schedule, "timezone": s.execution_timezone,
                          "default_status": s.default_status.value} for s in defs.schedules or []}
    sensors = {s.name: {"jobs": sorted(j.name for j in s.jobs) if s.has_jobs else [],
                        "default_status": s.default_status.value} for s in defs.sensors or []}
    return {"assets": assets, "checks": checks, "jobs": jobs, "schedules": schedules, "sensors": sensors}


def render(graph: dict) -> str:
    return json.dumps(graph, indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    text = render(asset_graph())
    if "--write" in sys.argv:
        SNAPSHOT.write_text(text)
        print(f"wrote {SNAPSHOT}")
    else:
        sys.stdout.write(text)
