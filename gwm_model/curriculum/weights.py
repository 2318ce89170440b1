"""Node weights apart from any canvas: what flows along the curriculum's edges.

A trained model's parameters split in two. Shared parameters (encoder, decoder, backbone, timestep
embedding) have shapes set by the architecture alone, so they mean the same thing in every node.
Field-specific parameters (one ``field_offset`` row per field with a token) are keyed by field path:
a child picks the rows of the fields it shares with its parents and starts the others at zero.
:class:`NodeWeights` holds both, read from a checkpoint directory (verified against its manifest's
hash before anything trains) or taken from a live model; :meth:`NodeWeights.apply_to` pours them into a
model built for any canvas (:mod:`gwm_model.curriculum.merge` grows a deeper child from them).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from gwm_model.nn.model import ModelConfig, WorldModelNet
from gwm_model.training.checkpoint import (
    FROZEN_PREFIX,
    MANIFEST_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    file_sha256,
    write_manifest,
)

FIELD_KEY = "field_offset"
ROW_PREFIX = "field_row."
NOT_WEIGHTS = ("field_text",)  # stored beside the weights, but an input (text embeddings), not a parameter


@dataclass(eq=False)  # identity, not tensor-by-tensor comparison
class NodeWeights:
    """Shared parameters by state-dict key plus field rows by path (see the module docstring)."""

    name: str
    config: ModelConfig
    shared: dict[str, torch.Tensor]
    field_rows: dict[str, torch.Tensor] = field(default_factory=dict)
    sha256: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def trained(self) -> bool:
        """False for a checkpoint that copied its fork point without training (a node with no data)."""
        return bool(self.manifest.get("history", {}).get("timing", {}).get("steps", 0))

    @property
    def data_size(self) -> float:
        """Observed cells the node trained on (the weight of weighted-by-data merging)."""
        return float(self.manifest.get("lineage", {}).get("data_size", 0.0) or 0.0)

    @classmethod
    def from_model(cls, name: str, model: WorldModelNet, manifest: dict[str, Any] | None = None) -> NodeWeights:
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
                 if not k.startswith(FROZEN_PREFIX) and k != FIELD_KEY}
        rows = {p: model.field_offset[i].detach().cpu().clone() for i, p in enumerate(model.plan.fields)}
        return cls(name, model.config, state, rows, None, dict(manifest or {}))

    def apply_to(self, model: WorldModelNet) -> dict[str, list[str]]:
        """Copy into ``model`` every shared tensor whose key and shape match and every field row it has.

        Returns ``{"loaded": keys, "fresh": keys of the model left at their initialisation, "unused": keys
        of these weights the model has no room for}``; field rows are listed as ``field_offset[<path>]``.
        """
        target = model.state_dict()
        loaded, fresh, unused = [], [], []
        updates = {}
        for key, value in target.items():
            if key.startswith(FROZEN_PREFIX) or key == FIELD_KEY:
                continue
            source = self.shared.get(key)
            if source is not None and tuple(source.shape) == tuple(value.shape):
                updates[key] = source.to(value.dtype)
                loaded.append(key)
            else:
                fresh.append(key)
        unused = [k for k in self.shared if k not in updates]
        offsets = target[FIELD_KEY].clone()
        for i, path in enumerate(model.plan.fields):
            row = self.field_rows.get(path)
            if row is not None and row.shape == offsets[i].shape:
                offsets[i] = row
                loaded.append(f"{FIELD_KEY}[{path}]")
            else:
                fresh.append(f"{FIELD_KEY}[{path}]")
        updates[FIELD_KEY] = offsets
        model.load_state_dict(updates, strict=False)
        return {"loaded": loaded, "fresh": fresh, "unused": unused}


def verified_manifest(directory: Path, node: str, role: str) -> dict[str, Any]:
    """The manifest of checkpoint ``directory``, after checking its weights file's hash; errors name ``node``,
    its ``role`` (e.g. "parent of econ_drives_finance") and the file."""
    manifest_path = directory / MANIFEST_FILE
    where = f"{role} '{node}'"
    if not manifest_path.exists():
        raise CheckpointError(f"{where}: no checkpoint at {manifest_path}. Fix: materialize train/{node} first")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{where}: checkpoint manifest {manifest_path} is not valid JSON ({exc}). "
                              f"Fix: rematerialize train/{node}") from exc
    weights = directory / str(manifest.get("weights", WEIGHTS_FILE))
    if not weights.exists():
        raise CheckpointError(f"{where}: checkpoint weights {weights} are missing. Fix: rematerialize train/{node}")
    if file_sha256(weights) != manifest.get("weights_sha256"):
        raise CheckpointError(f"{where}: checkpoint weights {weights} do not match the sha256 in {manifest_path} "
                              f"(corrupted or replaced). Fix: rematerialize train/{node}")
    return manifest


def load_node_weights(directory: str | Path, node: str, role: str = "node") -> NodeWeights:
    """Read and verify a node (or trunk) checkpoint as :class:`NodeWeights`."""
    directory = Path(directory)
    manifest = verified_manifest(directory, node, role)
    weights = directory / str(manifest.get("weights", WEIGHTS_FILE))
    try:
        state = load_file(str(weights))
    except Exception as exc:
        raise CheckpointError(f"{role} '{node}': checkpoint weights {weights} are unreadable ({exc}). "
                              f"Fix: rematerialize train/{node}") from exc
    for key in NOT_WEIGHTS:
        state.pop(key, None)
    rows = {k[len(ROW_PREFIX):]: state.pop(k) for k in list(state) if k.startswith(ROW_PREFIX)}
    if FIELD_KEY in state:
        offsets = state.pop(FIELD_KEY)
        fields = manifest.get("plan", {}).get("fields", [])
        if len(fields) != offsets.shape[0]:
            raise CheckpointError(f"{role} '{node}': {weights} has {offsets.shape[0]} field rows but its manifest "
                                  f"lists {len(fields)} fields. Fix: rematerialize train/{node}")
        rows.update({p: offsets[i] for i, p in enumerate(fields)})
    try:
        config = ModelConfig.from_manifest(manifest["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{role} '{node}': {directory / MANIFEST_FILE} has no usable model config ({exc}). "
                              f"Fix: rematerialize train/{node}") from exc
    return NodeWeights(node, config, state, rows, manifest.get("weights_sha256"), manifest)


def save_node_weights(directory: str | Path, weights: NodeWeights, manifest: dict[str, Any]) -> Path:
    """Write weights that belong to no single canvas (the trunk): shared tensors and field rows by path,
    plus ``manifest`` with the model config and the weights' hash. Atomic, like node checkpoints."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {**{k: v.contiguous() for k, v in weights.shared.items()},
               **{ROW_PREFIX + p: v.contiguous() for p, v in weights.field_rows.items()}}
    path = directory / WEIGHTS_FILE
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)
    doc = {**manifest, "weights": WEIGHTS_FILE, "weights_sha256": file_sha256(path), "model": weights.config.to_dict()}
    return write_manifest(directory, doc)


def state_digest(weights: NodeWeights) -> str:
    """A hash of the tensors themselves (for tests and reports: equal digests, equal weights)."""
    digest = hashlib.sha256()
    for key in sorted(weights.shared):
        digest.update(key.encode())
        digest.update(weights.shared[key].float().numpy().tobytes())
    for path in sorted(weights.field_rows):
        digest.update(path.encode())
        digest.update(weights.field_rows[path].float().numpy().tobytes())
    return digest.hexdigest()[:16]
