"""Train one curriculum node in one pass: resolve its inputs, start it, measure the start, train, evaluate, save.

:func:`train_node` runs six steps, each one function:

1. :func:`resolve_inputs`: before anything trains, the trunk's and every parent's checkpoint is read and
   verified (weights hash, model width, schema hash against the node's canvas); a failure names the node
   and the file.
2. :func:`~gwm_model.curriculum.merge.start_node`: the node's model, built once, starts as a fork of the
   trunk (tier 0), a copy of its one parent, or the merge of its parents, with the merge report.
3. :func:`measure_merge`: a join's merge measured on each parent's validation windows
   (:mod:`gwm_model.curriculum.merge_quality`).
4. :func:`train_started`: train with the node's hyperparameters (a node whose canvas has no data is not
   trained: its checkpoint is its starting point, and says so).
5. :func:`evaluate_node`: against the baselines on the test windows, skill over persistence on the
   validation windows, and for a join the trained child against each parent on the parent's windows.
6. :func:`save_node`: weights plus a manifest with the lineage (parents and trunk with their weights'
   hashes), the merge report and measures, the profile and hyperparameters, the canvas data version and
   schema hash, steps, metrics and seed.

Each parent's model on its own canvas is built once (its :class:`ParentView`) and serves both the merge
measures and the comparison with the trained child.

Under ``torchrun`` (a process group initialised, :mod:`gwm_model.training.distributed`) every rank resolves,
starts and trains (with DDP), and checks that every rank ended with the same weights (their digests go into
the manifest's ``distributed`` section); rank 0 alone measures the merge, evaluates and writes the
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
from gwm_model.curriculum.merge import MergeReport, start_node
from gwm_model.curriculum.merge_quality import ParentView, child_against_parents, merge_quality
from gwm_model.curriculum.spec import CurriculumNode
from gwm_model.curriculum.validation import persistence_skill
from gwm_model.curriculum.weights import NodeWeights, load_node_weights, state_digest
from gwm_model.evaluation.model_eval import evaluate_fitted
from gwm_model.nn.build import build_world_model
from gwm_model.training import distributed
from gwm_model.training.checkpoint import MANIFEST_FILE, CheckpointError, save_checkpoint
from gwm_model.training.run import FittedModel, field_periods, fit_model, projection_record
from gwm_model.training.trainer import TrainHistory, resolve_device, seed_everything

ARCHITECTURE_KEYS = ("d_model", "n_heads", "ff_mult", "value_channels", "backbone", "n_loops", "relative_inputs")


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


@dataclass
class NodeInputs:
    """A node's verified inputs: the trunk's weights and, per parent, its weights beside its canvas."""

    trunk_dir: Path
    trunk: NodeWeights
    parents: list[ParentInput]
    views: list[ParentView]


@dataclass
class NodeScores:
    """What step 5 measured: the test evaluation, the manifest's metrics, and a join's child against its parents."""

    evaluation: dict[str, Any] | None
    metrics: dict[str, float | None]
    child_vs_parents: dict[str, Any] | None


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


def resolve_inputs(node: CurriculumNode, canvas: Canvas, hyper, trunk_dir: Path, parents: Sequence[ParentInput]
                   ) -> NodeInputs:
    """Step 1: read and verify the trunk and parent checkpoints. Each parent's view measures models with the
    node's architecture, which holds every parent (a child may only grow), its merge and the node itself."""
    declared, given = list(node.parents), [p.name for p in parents]
    if declared != given:
        raise CheckpointError(f"node '{node.name}' declares parents {declared} but was given {given}")
    trunk = load_node_weights(trunk_dir, "trunk", role=f"node '{node.name}': trunk")
    _check_compatible(node.name, canvas, trunk, "trunk", trunk_dir, hyper)
    views = []
    for p in parents:
        weights = load_node_weights(p.checkpoint, p.name, role=f"node '{node.name}': parent")
        _check_compatible(node.name, canvas, weights, f"parent {p.name}", Path(p.checkpoint), hyper)
        views.append(ParentView(p.name, weights, p.canvas, p.fields_of, architecture=hyper.model))
    return NodeInputs(trunk_dir, trunk, list(parents), views)


def measure_merge(node: str, report: MergeReport, inputs: NodeInputs, merged: NodeWeights, hyper, embeddings,
                  log) -> dict[str, Any]:
    """Step 3: how much of each parent's gain the merge keeps, on the parent's validation windows."""
    log(f"{node}: {report.summary()} in {report.seconds * 1000:.0f} ms; measuring the merge on each "
        "parent's validation windows")
    measured = time.perf_counter()
    quality = merge_quality(inputs.views, inputs.trunk, merged, hyper.train, embeddings)
    quality["seconds"] = time.perf_counter() - measured
    log(f"{node}: merge keeps a worst-case share {quality['worst_surviving_share']} of parents' "
        f"gains; gap to the ensemble {quality['worst_ensemble_gap']}; loss barrier {quality['max_barrier']}")
    return quality


def train_started(node: str, model, canvas: Canvas, fields_of, hyper, report: MergeReport, embeddings, loggers,
                  log) -> tuple[FittedModel, str]:
    """Step 4: train the started ``model`` with the node's hyperparameters; a canvas without data is not trained
    (0 steps) and the returned note says so."""
    train_config, note = hyper.train, ""
    if not canvas.presence.any():
        train_config = replace(hyper.train, steps=0)
        note = (f"no data on the canvas: not trained; the checkpoint is its starting point "
                f"({report.method} of {', '.join(report.used)})")
        log(f"{node}: {note}")
    fitted = fit_model(canvas, fields_of, hyper.model, train_config, model=model, embeddings=embeddings,
                       loggers=loggers or [])
    return fitted, note


def _ranks_agree(node: str, model, batch_size: int) -> dict[str, Any]:
    """Every rank's weights digest (a collective: all ranks call it); raises when the ranks diverged."""
    digests = distributed.all_gather_object(state_digest(NodeWeights.from_model(node, model)))
    if len(set(digests)) != 1:
        raise RuntimeError(f"node '{node}': DDP ranks ended with different weights (digests {digests}); the "
                           "checkpoint is not written. Fix: report it; train the node without DDP meanwhile")
    world = distributed.world_size()
    return {"world_size": world, "backend": distributed.backend(), "global_batch_size": batch_size,
            "rank_batch_size": math.ceil(batch_size / world), "rank_weight_digests": digests}


def evaluate_node(node: str, fitted: FittedModel, canvas: Canvas, fields_of, hyper, inputs: NodeInputs,
                  embeddings) -> NodeScores:
    """Step 5: the test windows against the baselines (on the training device), then, with the model on the CPU,
    a join's child against each parent and the skill over persistence on the validation windows."""
    has_data = bool(canvas.presence.any())
    evaluation = (evaluate_fitted(fitted, hyper.evaluation.baselines, hyper.evaluation.max_anchors)
                  if has_data else None)
    model = fitted.model.cpu().eval()
    after = None
    if len(inputs.views) > 1 and has_data:
        after = child_against_parents(NodeWeights.from_model(node, model), inputs.views, hyper.train, embeddings)
    evaluation = evaluation.to_dict() if evaluation else None
    summary = (evaluation or {}).get("summary", {})
    metrics = {"val_loss": fitted.history.to_dict()["best_val_loss"],
               "val_skill": persistence_skill(model, canvas, hyper.train, embeddings, fields_of),
               "test_skill": summary.get("skill"), "test_mse": summary.get("mse"),
               "dm_pvalue": summary.get("dm_pvalue"), "median_group_skill": summary.get("median_group_skill"),
               "groups_scored": summary.get("groups_scored"),
               "groups_worse_than_naive": summary.get("groups_worse_than_naive"),
               "groups_beating_ar": summary.get("groups_beating_ar"),
               "forecastable_groups": summary.get("forecastable_groups"),
               "forecastable_group_skill": summary.get("forecastable_group_skill"),
               "forecastable_classical_skill": summary.get("forecastable_classical_skill"),
               "score_note": summary.get("reason") or (None if evaluation else "not evaluated: no data on the canvas")}
    return NodeScores(evaluation, metrics, after)


def save_node(node: CurriculumNode, canvas: Canvas, fields_of, hyper, out_dir: Path, inputs: NodeInputs,
              report: MergeReport, quality: dict[str, Any] | None, fitted: FittedModel, scores: NodeScores, note: str,
              ddp: dict[str, Any] | None, started: float, extra_manifest: dict[str, Any] | None) -> NodeResult:
    """Step 6: write the checkpoint (weights and the manifest of the module docstring)."""
    history, train_config = fitted.history, fitted.trainer.config
    steps = int(history.timing.get("steps", 0))
    train_steps = int(np.searchsorted(canvas.axis.starts, np.datetime64(canvas.stats.train_end, "D"), side="right"))
    lineage = {"trunk": {"weights_sha256": inputs.trunk.sha256, "path": str(inputs.trunk_dir)},
               "parents": [{"name": p.name, "weights_sha256": v.weights.sha256, "path": str(p.checkpoint)}
                           for p, v in zip(inputs.parents, inputs.views, strict=True)],
               "data_size": float(canvas.presence[:train_steps].sum()),
               "canvas_data_version": canvas.data_version, "schema_hash": canvas.schema_hash}
    extra = {"node": {"name": node.name, "tier": node.tier, "description": node.description,
                      "include": list(node.include), "exclude": list(node.exclude), "entities": node.entities,
                      "parents": list(node.parents), "data_sources": list(node.data_sources)},
             "projection": projection_record(fields_of) if hasattr(fields_of, "projection_hash") else None,
             "lineage": lineage,
             "merge": {"report": report.to_dict(), "quality": quality, "child_vs_parents": scores.child_vs_parents},
             "profile": hyper.profile, "hyperparameters": hyper.to_dict(), "history": history.to_dict(),
             "evaluation": scores.evaluation, "metrics": scores.metrics, "steps": steps, "seed": hyper.train.seed,
             "device": str(resolve_device(hyper.train.device)), "torch_version": torch.__version__, "note": note,
             "seconds": time.perf_counter() - started, "change_scale": fitted.trainer.objective.change_scale,
             "base_forecast": fitted.trainer.base_record,
             **({"distributed": ddp} if ddp else {}),
             **dict(extra_manifest or {})}
    manifest_path = save_checkpoint(out_dir, fitted.model, canvas, train_config.to_dict(),
                                    field_periods(fields_of, fitted.model), extra)
    sha = json.loads(manifest_path.read_text())["weights_sha256"]
    return NodeResult(node.name, manifest_path, sha, steps > 0, steps, history, scores.evaluation, scores.metrics,
                      report, quality, scores.child_vs_parents, note, time.perf_counter() - started,
                      lineage["parents"])


def _silent(message: str) -> None:
    pass


def train_node(node: CurriculumNode, canvas: Canvas, fields_of, hyper, out_dir: str | Path, trunk_dir: str | Path,
               parents: Sequence[ParentInput] = (), *, embeddings=None, loggers: Sequence | None = None,
               log=print, extra_manifest: dict[str, Any] | None = None) -> NodeResult | None:
    """Steps 1-6 of the module docstring; ``log(message)`` reports progress; ``extra_manifest`` is added to the
    manifest (e.g. the caller's fingerprint of the inputs). Returns None on DDP ranks other than 0."""
    started = time.perf_counter()
    main = distributed.is_main()
    log = log if main else _silent
    inputs = resolve_inputs(node, canvas, hyper, Path(trunk_dir), parents)
    seed_everything(hyper.train.seed)
    model = build_world_model(canvas, fields_of, hyper.model, embeddings=embeddings)
    merged, report = start_node(model, inputs.trunk, [v.weights for v in inputs.views], hyper.merge)
    quality = None
    if merged is not None and main:  # in a DDP run the other ranks wait for rank 0 at the start of training
        quality = measure_merge(node.name, report, inputs, merged, hyper, embeddings, log)
    fitted, note = train_started(node.name, model, canvas, fields_of, hyper, report, embeddings, loggers, log)
    ddp = _ranks_agree(node.name, fitted.model, fitted.trainer.config.batch_size) if distributed.is_active() else None
    if not main:
        return None
    scores = evaluate_node(node.name, fitted, canvas, fields_of, hyper, inputs, embeddings)
    return save_node(node, canvas, fields_of, hyper, Path(out_dir), inputs, report, quality, fitted, scores, note,
                     ddp, started, extra_manifest)
