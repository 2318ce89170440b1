"""Fingerprints of what a checkpoint was trained from, so unchanged inputs are never retrained.

A node's inputs: its canvas's data version, the hashes of its parents' and the trunk's weights,
its resolved hyperparameters and the code version. The trunk's: which tier-0 canvases it trains on,
its hyperparameters, the schema hash and the code version, but not the canvases' data versions: the
trunk is only the shared starting point, and retraining it on every data refresh would invalidate
every node of the curriculum. Its manifest records the data versions it saw; force a retrain to
renew it. A checkpoint stores its fingerprint in
its manifest (``inputs_fingerprint``); equal fingerprints mean training would see the same inputs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gwm_model.curriculum.spec import CurriculumError
from gwm_model.training.checkpoint import MANIFEST_FILE, code_version


def fingerprint(**parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stored_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest in ``directory``, or None when absent or torn (a torn one is retrained, never trusted)."""
    path = Path(directory) / MANIFEST_FILE
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except json.JSONDecodeError:
        return None


def weights_hash(directory: Path, name: str, child: str) -> str:
    """The weights hash recorded for checkpoint ``name`` (needed by ``child``), or a clear error."""
    manifest = stored_manifest(Path(directory) / name)
    if manifest is None or "weights_sha256" not in manifest:
        raise CurriculumError(f"train/{child}: the checkpoint {Path(directory) / name / MANIFEST_FILE} it builds on "
                              f"is missing or unreadable. Fix: materialize train/{name} first")
    return manifest["weights_sha256"]


def node_fingerprint(canvas_version: str | None, hyper: Mapping[str, Any], trunk_sha: str,
                     parent_shas: Mapping[str, str]) -> str:
    return fingerprint(canvas=canvas_version, hyper=dict(hyper), code=code_version(), trunk=trunk_sha,
                       parents=dict(parent_shas))


def trunk_fingerprint(canvases: Sequence[str], hyper: Mapping[str, Any], schema_hash: str | None) -> str:
    return fingerprint(canvases=sorted(canvases), hyper=dict(hyper), code=code_version(), schema=schema_hash)


def is_current(directory: Path, inputs: str) -> bool:
    stored = stored_manifest(directory)
    return bool(stored and stored.get("inputs_fingerprint") == inputs)
