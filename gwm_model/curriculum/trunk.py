"""The trunk: the one origin every curriculum node descends from.

Averaging weights only works between models that share an origin, so the tier-0 specialists do not
start from six random draws: they fork from the trunk. The trunk is one model whose shared
modules (encoder, decoder, backbone) are trained briefly on all the tier-0 canvases at once, one
batch from each canvas in turn, under one optimiser; each canvas keeps its own field rows (keyed by
path). With ``steps: 0``, or when no tier-0 canvas has data, the trunk is the shared initialisation
alone, and says so.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gwm_model.canvas.canvas import Canvas
from gwm_model.curriculum.validation import validation_anchors, window_loss
from gwm_model.curriculum.weights import NodeWeights, save_node_weights
from gwm_model.nn.build import build_world_model
from gwm_model.nn.model import ModelConfig, WorldModelNet
from gwm_model.training.batches import split_anchors, training_batches
from gwm_model.training.checkpoint import code_version
from gwm_model.training.config import TrainConfig
from gwm_model.training.steps import Objective
from gwm_model.training.trainer import lr_factor, resolve_device, seed_everything

SHARED_MODULES = ("encoder", "decoder", "backbone", "timestep")


@dataclass
class TrunkInput:
    name: str
    canvas: Canvas
    fields_of: object


@dataclass
class TrunkResult:
    steps: int
    trained_on: list[str]
    skipped: dict[str, str]
    losses: list[dict[str, float]] = field(default_factory=list)
    val_before: dict[str, float] = field(default_factory=dict)
    val_after: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    weights: NodeWeights | None = None  # set when training ends

    def to_dict(self) -> dict[str, object]:
        return {"steps": self.steps, "trained_on": self.trained_on, "skipped": self.skipped, "losses": self.losses,
                "val_before": self.val_before, "val_after": self.val_after, "seconds": self.seconds}


def _usable(item: TrunkInput, train: TrainConfig) -> tuple[np.ndarray | None, str]:
    if not item.canvas.presence.any():
        return None, "no data on its canvas"
    try:
        split = split_anchors(item.canvas, train.context, train.horizon, train.val_fraction)
    except ValueError as exc:
        return None, str(exc)
    return split.train, ""


def train_trunk(inputs: Sequence[TrunkInput], model_config: ModelConfig, train: TrainConfig, embeddings=None,
                progress: Callable[[int, int, float], None] | None = None) -> TrunkResult:
    """Train the trunk (see the module docstring); ``progress(step, total, loss)`` is called as it goes."""
    if not inputs:
        raise ValueError("the trunk needs at least one tier-0 canvas")
    started = time.perf_counter()
    seed_everything(train.seed)
    models: list[WorldModelNet] = []
    active: list[tuple[TrunkInput, WorldModelNet, np.ndarray]] = []
    skipped: dict[str, str] = {}
    for item in inputs:
        model = build_world_model(item.canvas, item.fields_of, model_config, embeddings=embeddings)
        if models:  # one set of shared modules: every canvas trains the same weights
            for name in SHARED_MODULES:
                setattr(model, name, getattr(models[0], name))
        models.append(model)
        train_anchors, reason = _usable(item, train)
        if train_anchors is None:
            skipped[item.name] = reason
        else:
            active.append((item, model, train_anchors))
    trained_on = [item.name for item, _, _ in active]
    device = resolve_device(train.device)
    for m in models:
        m.to(device)
    bf16 = train.precision == "bf16" or (train.precision == "auto" and device.type == "cuda")
    total = int(train.steps or 0) if active else 0
    result = TrunkResult(steps=total, trained_on=trained_on, skipped=skipped)
    val = {item.name: validation_anchors(item.canvas, train) for item, _, _ in active}
    result.val_before = {item.name: window_loss(m, item.canvas, val[item.name], train) for item, m, _ in active}
    if total:
        rng = np.random.default_rng(train.seed)
        generator = torch.Generator(device=device).manual_seed(train.seed)
        params = list({id(p): p for _, m, _ in active for p in m.parameters() if p.requires_grad}.values())
        optimizer = torch.optim.AdamW(params, lr=train.lr, weight_decay=train.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, train))
        batches = [training_batches(item.canvas, train, device)[0] for item, _, _ in active]
        objectives = [Objective(m, b, train.objective, train.masking, train.target_space)
                      for (_, m, _), b in zip(active, batches, strict=True)]
        for m in models:
            m.train()
        for step in range(total):
            k = step % len(active)
            chosen = rng.choice(active[k][2], size=min(train.batch_size, active[k][2].size), replace=False)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss, _, _ = objectives[k].loss(batches[k](chosen), generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, train.grad_clip)
            optimizer.step()
            scheduler.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"trunk training diverged at step {step + 1} on canvas "
                                         f"'{active[k][0].name}' (loss {value}). Fix: lower the trunk's lr")
            if step == 0 or (step + 1) % max(1, total // 50) == 0 or step + 1 == total:
                result.losses.append({"step": step + 1, "canvas": active[k][0].name, "loss": value})
            if progress is not None:
                progress(step + 1, total, value)
    result.val_after = {item.name: window_loss(m, item.canvas, val[item.name], train) for item, m, _ in active}
    rows: dict[str, torch.Tensor] = {}
    for m in models:
        for i, path in enumerate(m.plan.fields):
            rows.setdefault(path, m.field_offset[i].detach().cpu().clone())
    weights = NodeWeights.from_model("trunk", models[0])
    weights.field_rows = rows
    result.weights = weights
    result.seconds = time.perf_counter() - started
    return result


def save_trunk(directory: Path, result: TrunkResult, hyper, inputs: Sequence[TrunkInput], inputs_fingerprint: str
               ) -> dict:
    """Write the trunk checkpoint (weights by key and field path, manifest with what it was trained on)."""
    schema_hash = inputs[0].canvas.schema_hash if inputs else None
    path = save_node_weights(directory, result.weights, {
        "kind": "trunk", "node": {"name": "trunk", "tier": -1, "parents": []}, "profile": hyper.profile,
        "hyperparameters": hyper.to_dict(), "trunk": result.to_dict(), "steps": result.steps,
        "schema_hash": schema_hash, "canvases": {i.name: i.canvas.data_version for i in inputs},
        "inputs_fingerprint": inputs_fingerprint, "code_version": code_version(), "seed": hyper.train.seed,
        "torch_version": torch.__version__})
    return json.loads(path.read_text())
