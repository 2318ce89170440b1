"""Train one model on one canvas, and checkpoint it: the training half of every curriculum node.

:func:`fit_model` builds (or takes) a model and trains it; :func:`save_fitted` writes its checkpoint.
Scoring the trained model against baselines is a separate step (:mod:`gwm_model.evaluation`), which
the caller runs between the two when it wants the scores in the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gwm_model.canvas.canvas import Canvas
from gwm_model.nn.build import build_world_model
from gwm_model.nn.model import ModelConfig, WorldModelNet
from gwm_model.schema.projection import Projection
from gwm_model.schema.spec import FieldSpec
from gwm_model.training.checkpoint import save_checkpoint
from gwm_model.training.config import TrainConfig
from gwm_model.training.trainer import Trainer, TrainHistory, seed_everything


@dataclass
class FittedModel:
    """A trained model, its history, and the trainer that holds its windows (batches, split, objective)."""

    model: WorldModelNet
    history: TrainHistory
    trainer: Trainer


def projection_record(projection: Projection) -> dict[str, Any]:
    return {"include": list(projection.include), "exclude": list(projection.exclude),
            "entities": dict(projection.entities), "projection_hash": projection.projection_hash}


def field_periods(fields_of: Projection | Mapping[str, FieldSpec], model: WorldModelNet) -> dict[str, float]:
    """The period in days of every field ``model`` has a token for (what its checkpoint records)."""
    specs = {f.path: f for f in fields_of.fields} if hasattr(fields_of, "fields") else dict(fields_of)
    return {p: specs[p].period_days for p in model.plan.fields}


def fit_model(canvas: Canvas, projection: Projection, model_config: ModelConfig, train_config: TrainConfig, *,
              model: WorldModelNet | None = None, embeddings=None, loggers: Sequence | None = None,
              log_dir: str | Path | None = None) -> FittedModel:
    """Seed, build (or take) a model and train it (``steps: 0``: not trained). ``loggers`` default to
    ``train_config.loggers`` under ``log_dir``. In a DDP run (see :mod:`gwm_model.training.distributed`) every
    rank calls it and trains its share of each batch."""
    seed_everything(train_config.seed)
    if model is None:
        model = build_world_model(canvas, projection, model_config, embeddings=embeddings)
    trainer = Trainer(model, canvas, train_config, loggers=loggers, log_dir=log_dir)
    history = trainer.fit() if train_config.steps != 0 else TrainHistory(stopped="not trained")
    return FittedModel(model, history, trainer)


def save_fitted(out_dir: str | Path, fitted: FittedModel, canvas: Canvas, projection: Projection,
                train_config: TrainConfig, evaluation: Mapping[str, Any] | None = None,
                extra_manifest: Mapping[str, Any] | None = None) -> Path:
    """Write ``fitted``'s checkpoint: the projection, history, ``evaluation`` (the scores, when the caller ran
    one), seed and device, plus ``extra_manifest``; returns the manifest path. In a DDP run only rank 0 calls it."""
    extra = {"projection": projection_record(projection), "history": fitted.history.to_dict(),
             "evaluation": evaluation, "seed": train_config.seed, "device": str(fitted.trainer.device),
             "torch_version": torch.__version__, "change_scale": fitted.trainer.objective.change_scale,
             "base_forecast": fitted.trainer.base_record,
             **dict(extra_manifest or {})}
    return save_checkpoint(out_dir, fitted.model, canvas, train_config.to_dict(),
                           field_periods(projection, fitted.model), extra)
