"""Self-describing checkpoints: weights in safetensors plus a manifest that is enough to rebuild the model.

``<dir>/weights.safetensors`` holds the model's state (for a pretrained frozen backbone, only what
training changed: the frozen transformer is named in the manifest and loaded from its source) and
the fields' text embeddings. ``<dir>/manifest.json`` holds the architecture, the token plan, the
canvas geometry and normalisation (so new data can be encoded exactly as the training data was),
the training configuration, metrics and whatever the caller adds (lineage, merge reports).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from gwm_model.canvas.canvas import Canvas
from gwm_model.canvas.layout import CanvasLayout
from gwm_model.nn.geometry import TokenPlan
from gwm_model.nn.model import ModelConfig, WorldModelNet

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "manifest.json"
FROZEN_PREFIX = "backbone.transformer."


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupted or does not fit; the message names the file and the fix."""


@functools.cache
def code_version() -> str:
    """``<package version>+<hash of the gwm_model sources>``: the code that builds and trains models. A change
    to it changes every checkpoint's input fingerprint (so nodes retrain); documentation changes do not."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        package = version("gwm")
    except PackageNotFoundError:
        package = "unknown"
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return f"{package}+{digest.hexdigest()[:12]}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_to_save(model: WorldModelNet) -> dict[str, torch.Tensor]:
    """The state to store: everything except a pretrained frozen transformer's own weights."""
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(FROZEN_PREFIX)}
    state["field_text"] = model.field_text
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def canvas_description(canvas: Canvas) -> dict[str, Any]:
    """What a checkpoint keeps of the canvas it was trained on (no data): geometry, axis, normalisation."""
    return {"layout": canvas.layout.to_dict(), "slots": list(canvas.slots), "time_axis": canvas.axis.to_dict(),
            "normalisation": canvas.stats.to_dict(), "transforms": dict(canvas.transforms),
            "loss_weight": {p: float(w) for p, w in zip(canvas.paths, canvas.loss_weight.tolist(), strict=True)},
            "schema_hash": canvas.schema_hash, "data_version": canvas.data_version}


def save_checkpoint(directory: str | Path, model: WorldModelNet, canvas: Canvas, train: dict[str, Any],
                    field_periods: dict[str, float], extra: dict[str, Any] | None = None) -> Path:
    """Write the checkpoint atomically (files go to a temporary name first); returns the manifest path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_FILE
    tmp = weights.with_suffix(f".tmp{os.getpid()}")
    save_file(weights_to_save(model), str(tmp), metadata={"format_version": str(FORMAT_VERSION)})
    os.replace(tmp, weights)
    backbone = model.backbone
    manifest = {
        "format_version": FORMAT_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "weights": WEIGHTS_FILE,
        "weights_sha256": file_sha256(weights),
        "model": model.config.to_dict(),
        "backbone": backbone.config_dict() if hasattr(backbone, "config_dict") else None,
        "plan": model.plan.to_dict(),
        "field_periods": {p: float(field_periods[p]) for p in model.plan.fields},
        "parameters": model.parameter_counts(),
        "trainable_fraction": model.trainable_fraction(),
        "canvas": canvas_description(canvas),
        "train": train,
        **(extra or {}),
    }
    return write_manifest(directory, manifest)


def write_manifest(directory: Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest.json`` atomically (a temporary name, then a rename); returns its path."""
    path = Path(directory) / MANIFEST_FILE
    tmp_manifest = path.with_suffix(f".tmp{os.getpid()}")
    tmp_manifest.write_text(json.dumps(manifest, indent=1, default=_json_default))
    os.replace(tmp_manifest, path)
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path | dt.date):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} into a checkpoint manifest")


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST_FILE
    if not path.exists():
        raise CheckpointError(f"no checkpoint manifest at {path}. Fix: train the node (materialize its train asset) "
                              "or point at a checkpoint directory")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint manifest {path} is not valid JSON ({exc}). Fix: retrain the node") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {manifest.get('format_version')}, this code reads "
                              f"{FORMAT_VERSION}. Fix: retrain the node")
    return manifest


def load_model(directory: str | Path, device: str | torch.device = "cpu",
               verify: bool = True) -> tuple[WorldModelNet, dict[str, Any]]:
    """Rebuild the model from a checkpoint directory alone; returns (model, manifest)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    weights = directory / manifest["weights"]
    if not weights.exists():
        raise CheckpointError(f"checkpoint weights {weights} are missing. Fix: retrain the node")
    if verify and file_sha256(weights) != manifest["weights_sha256"]:
        raise CheckpointError(f"checkpoint weights {weights} do not match the hash in its manifest (corrupted or "
                              "replaced). Fix: retrain the node")
    try:
        state = load_file(str(weights))
    except Exception as exc:
        raise CheckpointError(f"checkpoint weights {weights} are unreadable ({exc}). Fix: retrain the node") from exc
    config = ModelConfig.from_manifest(manifest["model"])
    layout = CanvasLayout.from_dict(manifest["canvas"]["layout"])
    plan = TokenPlan(layout, tuple(manifest["canvas"]["slots"]), tuple(manifest["plan"]["fields"]),
                     int(manifest["plan"]["channels"]))
    text = state.pop("field_text").numpy()
    periods = [manifest["field_periods"][p] for p in plan.fields]
    backbone = None
    if config.backbone == "cogvideox":
        from gwm_model.nn.cogvideox import CogVideoXBackbone

        backbone = CogVideoXBackbone.from_config_dict(manifest["backbone"])
    model = WorldModelNet(config, plan, text, periods, backbone=backbone)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes that disagree with the manifest's architecture
        raise CheckpointError(f"checkpoint {weights} does not fit its manifest's architecture ({exc}). "
                              "Fix: retrain the node") from exc
    missing = [k for k in missing if not k.startswith(FROZEN_PREFIX)]
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {weights} does not fit its manifest's architecture: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}. Fix: retrain the node")
    return model.to(device).eval(), manifest
