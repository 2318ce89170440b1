"""The asset graph is a reviewed artefact: keys, groups, kinds, pools, dependencies, checks, automation, jobs,
schedules and sensors must equal ``tests/snapshots/asset_graph.json``. A change to the graph shows up as a diff
of that file; regenerate it with ``.venv/bin/python -m tests.asset_graph --write`` once the change is intended."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gwm_model.curriculum import STANDARD_CURRICULUM, load_curriculum
from tests.asset_graph import SNAPSHOT

CURRICULUM = load_curriculum(STANDARD_CURRICULUM)

REPO = Path(__file__).resolve().parent.parent


def current_graph() -> dict:
    """The graph as a fresh process sees it with no gwm settings in the environment (the defaults)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GWM_")}
    out = subprocess.run([sys.executable, "-m", "tests.asset_graph"], cwd=REPO, env=env, capture_output=True,
                         text=True, check=True, timeout=300).stdout
    return json.loads(out)


def test_asset_graph_matches_the_reviewed_snapshot():
    expected = json.loads(SNAPSHOT.read_text())
    graph = current_graph()
    for part in ("assets", "checks", "jobs", "schedules", "sensors"):
        assert graph[part] == expected[part], (
            f"the asset graph's {part} changed: review the difference, then regenerate {SNAPSHOT.name} with "
            "`.venv/bin/python -m tests.asset_graph --write`")


def test_snapshot_covers_the_whole_curriculum():
    graph = json.loads(SNAPSHOT.read_text())
    groups = {}
    for spec in graph["assets"].values():
        groups[spec["group"]] = groups.get(spec["group"], 0) + 1
    # bundled_text and coverage_plan came with issue 16
    assert groups == {"sources": 8, "warehouse": 5, "canvases": 12, "training": 14}
    assert graph["assets"]["train/full_integration"]["deps"] == [
        "canvas/full_integration", "train/corporate_strategy", "train/narratives_drive_markets", "train/policy_impact"]
    assert graph["assets"]["forecasts"]["deps"] == ["train/" + n for n in sorted(CURRICULUM.nodes)]
    assert graph["checks"]["observations:quarantine_empty"]["blocking"] is False
    assert set(graph["sensors"]) == {"edgar_filings", "stale_sources", "follow_sources"}
