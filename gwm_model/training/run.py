"""Train, evaluate and checkpoint one model on one canvas: the unit every curriculum node runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gwm_model.canvas.canvas import Canvas
from gwm_model.evaluation.model_eval import Evaluation, evaluate_model
from gwm_model.nn.build import build_world_model
from gwm_model.nn.model import ModelConfig, WorldModelNet
from gwm_model.schema.projection import Projection
from gwm_model.training import distributed
from gwm_model.training.checkpoint import save_checkpoint
from gwm_model.training.config import TrainConfig
from gwm_model.training.trainer import Trainer, TrainHistory, seed_everything


@dataclass
class TrainedModel:
    model: WorldModelNet
    history: TrainHistory
    evaluation: Evaluation | None
    manifest_path: Path | None


def projection_record(projection: Projection) -> dict[str, Any]:
    return {"include": list(projection.include), "exclude": list(projection.exclude),
            "entities": dict(projection.entities), "projection_hash": projection.projection_hash}


def train_model(canvas: Canvas, projection: Projection, model_config: ModelConfig, train_config: TrainConfig,
                out_dir: str | Path | None = None, *, model: WorldModelNet | None = None, embeddings=None,
                loggers: Sequence | None = None, evaluate: bool = True, baselines: Sequence[str] = ("persistence",
                                                                                                   "ar", "dfm"),
                max_eval_anchors: int | None = 300, extra_manifest: Mapping[str, Any] | None = None) -> TrainedModel:
    """Build (or take) a model, train it, evaluate it against baselines on the test windows and, with
    ``out_dir``, write its checkpoint. ``loggers`` default to ``train_config.loggers`` under ``out_dir``.
    In a DDP run (see :mod:`gwm_model.training.distributed`) every rank trains; only rank 0 evaluates and
    writes the checkpoint (the other ranks return ``evaluation=None`` and ``manifest_path=None``)."""
    seed_everything(train_config.seed)
    if model is None:
        model = build_world_model(canvas, projection, model_config, embeddings=embeddings)
    trainer = Trainer(model, canvas, train_config, loggers=loggers, log_dir=out_dir)
    history = trainer.fit() if train_config.steps != 0 else TrainHistory(stopped="not trained")
    evaluation = None
    main = distributed.is_main()
    if evaluate and main and trainer.split.test.size:
        evaluation = evaluate_model(trainer.objective, trainer.batches, trainer.split.test,
                                    trainer.split.train_end_step, baselines=baselines, max_anchors=max_eval_anchors,
                                    samples=train_config.diffusion_samples, sample_steps=train_config.diffusion_steps)
    manifest_path = None
    if out_dir is not None and main:
        specs = {f.path: f for f in projection.fields}
        extra = {"projection": projection_record(projection), "history": history.to_dict(),
                 "evaluation": evaluation.to_dict() if evaluation else None, "seed": train_config.seed,
                 "device": str(trainer.device), "torch_version": torch.__version__, **dict(extra_manifest or {})}
        manifest_path = save_checkpoint(out_dir, model, canvas, train_config.to_dict(),
                                        {p: specs[p].period_days for p in model.plan.fields}, extra)
    return TrainedModel(model, history, evaluation, manifest_path)
