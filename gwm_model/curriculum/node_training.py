"""Train one curriculum node: check its inputs, start it from the trunk or its parents, train, measure, save.

1. Before anything trains, the trunk's and every parent's checkpoint is read and verified (weights
   hash, model width, schema hash against the node's canvas); a failure names the node and the file.
2. Start: a tier-0 node forks from the trunk; one parent is copied; several are merged
   (:mod:`gwm_model.curriculum.merge`) and the merge is measured on each parent's validation windows
   (:mod:`gwm_model.curriculum.merge_quality`).
3. Train with the node's hyperparameters (a node whose canvas has no data is not trained: its
   checkpoint is its starting point, and says so), evaluate against the baselines on the test
   windows, and for joins compare the trained child with each parent on the parent's windows.
4. Write the checkpoint: weights plus a manifest with the lineage (parents and trunk with their
   weights' hashes), the merge report and measures, the profile and hyperparameters, the canvas
   data version and schema hash, steps, metrics and seed.

Under ``torchrun`` (a process group initialised, :mod:`gwm_model.training.distributed`) every rank runs
steps 1-3's training with DDP; rank 0 alone measures the merge, evaluates, checks that every rank ended
with the same weights (their digests go into the manifest's ``distributed`` section) and writes the
checkpoint; the other ranks return None.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gwm_model.canvas.canvas import Canvas
from gwm_model.curriculum.merge import MergeReport, merge_parents, start_child
from gwm_model.curriculum.merge_quality import ParentView, child_against_parents, merge_quality, validation_anchors
from gwm_model.curriculum.merge_quality import window_loss as _window_loss
from gwm_model.curriculum.spec import CurriculumNode
from gwm_model.curriculum.weights import NodeWeights, load_node_weights, state_digest
from gwm_model.nn.build import build_world_model
from gwm_model.training import distributed
from gwm_model.training.checkpoint import MANIFEST_FILE, CheckpointError, save_checkpoint
from gwm_model.training.run import projection_record, train_model
from gwm_model.training.trainer import TrainHistory, resolve_device, seed_everything

ARCHITECTURE_KEYS = ("d_model", "n_heads", "ff_mult", "value_channels", "backbone", "n_loops")


@dataclass
class ParentInput:
    """A parent as a child needs it: its checkpoint directory, and its canvas for the merge measures."""

    name: str
    checkpoint: Path
    canvas: Canvas
    fields_of: object


@dataclass
class NodeResult:
    node: str
    manifest_path: Path
    weights_sha256: str
    trained: bool
    steps: int
    history: TrainHistory
    evaluation: dict[str, Any] | None
    metrics: dict[str, float | None]
    merge_report: MergeReport
    merge_quality: dict[str, Any] | None = None
    child_vs_parents: dict[str, Any] | None = None
    note: str = ""
    seconds: float = 0.0
    parents: list[dict[str, str]] = field(default_factory=list)


def _check_compatible(node: str, canvas: Canvas, weights: NodeWeights, role: str, directory: Path, hyper) -> None:
    where = f"node '{node}': {role} checkpoint {directory / MANIFEST_FILE}"
    schema = weights.manifest.get("canvas", {}).get("schema_hash") or weights.manifest.get("schema_hash")
    if schema and canvas.schema_hash and schema != canvas.schema_hash:
        raise CheckpointError(f"{where} was trained on world schema {schema}, but the node's canvas uses "
                              f"{canvas.schema_hash}. Fix: retrain {role.split()[-1]} on the current schema "
                              "(materialize it again)")
    for key in ARCHITECTURE_KEYS:
        theirs, ours = getattr(weights.config, key), getattr(hyper.model, key)
        if theirs != ours:
            raise CheckpointError(f"{where} has {key}={theirs!r} but the node's profile '{hyper.profile}' asks for "
                                  f"{ours!r}; weights of different {key} cannot be merged. Fix: train the whole "
                                  "curriculum with one profile")
    if weights.config.n_layers > hyper.model.n_layers:
        raise CheckpointError(f"{where} has {weights.config.n_layers} layers, more than the node's "
                              f"{hyper.model.n_layers}: a child may only grow. Fix: give the node at least as many "
                              "layers as its parents")


def load_inputs(node: CurriculumNode, canvas: Canvas, hyper, trunk_dir: Path, parents: Sequence[ParentInput]
                ) -> tuple[NodeWeights, list[NodeWeights]]:
    """Read and verify the trunk and parent checkpoints (step 1 of the module docstring)."""
    declared, given = list(node.parents), [p.name for p in parents]
    if declared != given:
        raise CheckpointError(f"node '{node.name}' declares parents {declared} but was given {given}")
    trunk = load_node_weights(trunk_dir, "trunk", role=f"node '{node.name}': trunk")
    _check_compatible(node.name, canvas, trunk, "trunk", Path(trunk_dir), hyper)
    loaded = []
    for p in parents:
        weights = load_node_weights(p.checkpoint, p.name, role=f"node '{node.name}': parent")
        _check_compatible(node.name, canvas, weights, f"parent {p.name}", Path(p.checkpoint), hyper)
        loaded.append(weights)
    return trunk, loaded


def persistence_skill(model, canvas: Canvas, train, embeddings, fields_of) -> float | None:
    """Skill over persistence on the validation windows, ``1 - L_model / L_persistence``, one masking draw
    for both (persistence is an untrained model: its correction head starts at zero)."""
    anchors = validation_anchors(canvas, train, limit=256)
    if anchors.size == 0 or not canvas.presence.any():
        return None
    fresh = build_world_model(canvas, fields_of, model.config, embeddings=embeddings)
    base = _window_loss(fresh, canvas, anchors, train)
    loss = _window_loss(model, canvas, anchors, train)
    if not (math.isfinite(base) and math.isfinite(loss)) or base <= 0:
        return None
    return 1.0 - loss / base


def _ranks_agree(node: str, model, batch_size: int) -> dict[str, Any]:
    """Every rank's weights digest (a collective: all ranks call it); raises when the ranks diverged."""
    digests = distributed.all_gather_object(state_digest(NodeWeights.from_model(node, model)))
    if len(set(digests)) != 1:
        raise RuntimeError(f"node '{node}': DDP ranks ended with different weights (digests {digests}); the "
                           "checkpoint is not written. Fix: report it; train the node without DDP meanwhile")
    world = distributed.world_size()
    return {"world_size": world, "backend": distributed.backend(), "global_batch_size": batch_size,
            "rank_batch_size": math.ceil(batch_size / world), "rank_weight_digests": digests}


def train_node(node: CurriculumNode, canvas: Canvas, fields_of, hyper, out_dir: str | Path, trunk_dir: str | Path,
               parents: Sequence[ParentInput] = (), *, embeddings=None, loggers: Sequence | None = None,
               log=print, extra_manifest: dict[str, Any] | None = None) -> NodeResult | None:
    """Steps 1-4 of the module docstring; ``log(message)`` reports progress; ``extra_manifest`` is added to the
    manifest (e.g. the caller's fingerprint of the inputs). Returns None on DDP ranks other than 0."""
    started = time.perf_counter()
    main = distributed.is_main()
    if not main:
        def log(message: str) -> None:
            pass

    out_dir, trunk_dir = Path(out_dir), Path(trunk_dir)
    trunk, parent_weights = load_inputs(node, canvas, hyper, trunk_dir, parents)
    seed_everything(hyper.train.seed)
    model = build_world_model(canvas, fields_of, hyper.model, embeddings=embeddings)
    quality = None
    views = [ParentView(p.name, w, p.canvas, p.fields_of) for p, w in zip(parents, parent_weights, strict=True)]
    if len(parents) <= 1:  # fork from the trunk, or start from the one parent
        source, method = (parent_weights[0], "copy") if parents else (trunk, "fork")
        report = MergeReport(method=method, parents=[source.name], used=[source.name], copied=list(source.shared))
        start_child(model, source, report)
        report.fields_copied = len(model.plan.fields) - report.fields_fresh
    else:
        merged, report = merge_parents(parent_weights, hyper.merge.method, base=trunk,
                                       ties_density=hyper.merge.ties_density)
        start_child(model, merged, report)
        if main:  # a measurement: in a DDP run the other ranks wait for rank 0 at the start of training
            log(f"{node.name}: {report.summary()} in {report.seconds * 1000:.0f} ms; measuring the merge on each "
                "parent's validation windows")
            measured = time.perf_counter()
            quality = merge_quality(views, trunk, merged, hyper.train, embeddings)
            quality["seconds"] = time.perf_counter() - measured
            log(f"{node.name}: merge keeps a worst-case share {quality['worst_surviving_share']} of parents' "
                f"gains; gap to the ensemble {quality['worst_ensemble_gap']}; loss barrier {quality['max_barrier']}")
    has_data = bool(canvas.presence.any())
    train_config = hyper.train
    note = ""
    if not has_data:
        train_config = replace(hyper.train, steps=0)
        note = (f"no data on the canvas: not trained; the checkpoint is its starting point "
                f"({report.method} of {', '.join(report.used)})")
        log(f"{node.name}: {note}")
    trained = train_model(canvas, fields_of, hyper.model, train_config, model=model, embeddings=embeddings,
                          loggers=loggers or [], evaluate=has_data, baselines=hyper.evaluation.baselines,
                          max_eval_anchors=hyper.evaluation.max_anchors)
    model, history = trained.model.cpu().eval(), trained.history
    ddp = _ranks_agree(node.name, model, train_config.batch_size) if distributed.is_active() else None
    if not main:
        return None
    after = None
    if len(parents) > 1 and has_data:
        after = child_against_parents(NodeWeights.from_model(node.name, model), views, hyper.train, embeddings)
    steps = int(history.timing.get("steps", 0))
    evaluation = trained.evaluation.to_dict() if trained.evaluation else None
    summary = (evaluation or {}).get("summary", {})
    metrics = {"val_loss": history.to_dict()["best_val_loss"],
               "val_skill": persistence_skill(model, canvas, hyper.train, embeddings, fields_of),
               "test_skill": summary.get("skill"), "test_mse": summary.get("mse"),
               "dm_pvalue": summary.get("dm_pvalue")}
    train_steps = int(np.searchsorted(canvas.axis.starts, np.datetime64(canvas.stats.train_end, "D"), side="right"))
    lineage = {"trunk": {"weights_sha256": trunk.sha256, "path": str(trunk_dir)},
               "parents": [{"name": p.name, "weights_sha256": w.sha256, "path": str(p.checkpoint)}
                           for p, w in zip(parents, parent_weights, strict=True)],
               "data_size": float(canvas.presence[:train_steps].sum()),
               "canvas_data_version": canvas.data_version, "schema_hash": canvas.schema_hash}
    extra = {"node": {"name": node.name, "tier": node.tier, "description": node.description,
                      "include": list(node.include), "exclude": list(node.exclude), "entities": node.entities,
                      "parents": list(node.parents), "data_sources": list(node.data_sources)},
             "projection": projection_record(fields_of) if hasattr(fields_of, "projection_hash") else None,
             "lineage": lineage, "merge": {"report": report.to_dict(), "quality": quality, "child_vs_parents": after},
             "profile": hyper.profile, "hyperparameters": hyper.to_dict(), "history": history.to_dict(),
             "evaluation": evaluation, "metrics": metrics, "steps": steps, "seed": hyper.train.seed,
             "device": str(resolve_device(hyper.train.device)), "torch_version": torch.__version__, "note": note,
             "seconds": time.perf_counter() - started, **({"distributed": ddp} if ddp else {}),
             **dict(extra_manifest or {})}
    specs = {f.path: f for f in fields_of.fields} if hasattr(fields_of, "fields") else dict(fields_of)
    manifest_path = save_checkpoint(out_dir, model, canvas, train_config.to_dict(),
                                    {p: specs[p].period_days for p in model.plan.fields}, extra)
    sha = json.loads(manifest_path.read_text())["weights_sha256"]
    return NodeResult(node.name, manifest_path, sha, steps > 0, steps, history, evaluation, metrics, report,
                      quality, after, note, time.perf_counter() - started, lineage["parents"])
