"""One canvas end to end: train a model, score it against the baselines on the test windows, checkpoint it.

The convenience for a single model (benchmarks, tests, notebooks); a curriculum node runs the same steps
with its lineage around them (:func:`gwm_model.curriculum.node_training.train_node`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gwm_model.canvas.canvas import Canvas
from gwm_model.evaluation.model_eval import Evaluation, evaluate_fitted
from gwm_model.nn.model import ModelConfig, WorldModelNet
from gwm_model.schema.projection import Projection
from gwm_model.training import distributed
from gwm_model.training.config import TrainConfig
from gwm_model.training.run import fit_model, save_fitted
from gwm_model.training.trainer import TrainHistory


@dataclass
class TrainedModel:
    model: WorldModelNet
    history: TrainHistory
    evaluation: Evaluation | None
    manifest_path: Path | None


def train_and_evaluate(canvas: Canvas, projection: Projection, model_config: ModelConfig,
                       train_config: TrainConfig, out_dir: str | Path | None = None, *,
                       model: WorldModelNet | None = None, embeddings=None, loggers: Sequence | None = None,
                       evaluate: bool = True, baselines: Sequence[str] = ("persistence", "ar", "dfm"),
                       max_eval_anchors: int | None = 300,
                       extra_manifest: Mapping[str, Any] | None = None) -> TrainedModel:
    """Build (or take) a model, train it, evaluate it against baselines on the test windows and, with
    ``out_dir``, write its checkpoint. ``loggers`` default to ``train_config.loggers`` under ``out_dir``.
    In a DDP run (see :mod:`gwm_model.training.distributed`) every rank trains; only rank 0 evaluates and
    writes the checkpoint (the other ranks return ``evaluation=None`` and ``manifest_path=None``)."""
    fitted = fit_model(canvas, projection, model_config, train_config, model=model, embeddings=embeddings,
                       loggers=loggers, log_dir=out_dir)
    main = distributed.is_main()
    evaluation = evaluate_fitted(fitted, baselines, max_eval_anchors) if evaluate and main else None
    manifest_path = None
    if out_dir is not None and main:
        manifest_path = save_fitted(out_dir, fitted, canvas, projection, train_config,
                                    evaluation.to_dict() if evaluation else None, extra_manifest)
    return TrainedModel(fitted.model, fitted.history, evaluation, manifest_path)
