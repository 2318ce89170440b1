"""Validation windows and the loss on them with one fixed masking draw: what the trunk, the merge measures
and a node's skill over persistence are scored with, so that every model compared is scored on the same
hidden cells."""

from __future__ import annotations

import math
import weakref

import numpy as np
import torch
from torch import nn

from gwm_model.canvas.canvas import Canvas
from gwm_model.nn.build import build_world_model
from gwm_model.training.batches import WindowBatches, eval_chunk, split_anchors, training_batches
from gwm_model.training.config import TrainConfig
from gwm_model.training.steps import Objective


def validation_anchors(canvas: Canvas, train: TrainConfig, limit: int = 64) -> np.ndarray:
    """The canvas's validation anchors for ``train``'s window, thinned evenly to at most ``limit``."""
    try:
        val = split_anchors(canvas, train.context, train.horizon, train.val_fraction).val
    except ValueError:
        return np.zeros(0, dtype=np.int64)
    if val.size > limit:
        val = val[np.linspace(0, val.size - 1, limit).round().astype(int)]
    return val


_BATCHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # canvas -> {window settings: its batches}


def _batches(canvas: Canvas, train: TrainConfig, device: torch.device) -> WindowBatches:
    """``training_batches`` of ``canvas`` for ``train``'s windows, built once per canvas, settings and device: the
    merge measures score several models on one canvas, and building the AR base of a wide canvas costs ~0.5 s."""
    key = (train.context, train.horizon, train.val_fraction, train.base_forecast, train.base_order, str(device))
    per_canvas = _BATCHES.setdefault(canvas, {})
    if key not in per_canvas:
        per_canvas[key] = training_batches(canvas, train, device)[0]
    return per_canvas[key]


@torch.no_grad()
def window_loss(model: nn.Module, canvas: Canvas, anchors: np.ndarray, train: TrainConfig, seed: int = 1234,
                extra_hiding: bool = True) -> float:
    """Objective loss of ``model`` on ``anchors`` of ``canvas`` with a fixed masking draw (nan if none scored).
    ``extra_hiding=False``: no masking draw, only the cells hidden by publication at the anchor (every cell after
    it and the late releases before it): the forecasting task alone, as the evaluation poses it."""
    if anchors.size == 0:
        return math.nan
    device = next(model.parameters()).device  # evaluated where the model lives (CPU or the training GPU)
    batches = _batches(canvas, train, device)
    objective = Objective(model, batches, train.objective, train.masking, train.target_space)
    generator = torch.Generator(device=device).manual_seed(seed)
    total, weight = 0.0, 0
    model.eval()
    chunk = eval_chunk(batches.window, model.plan.num_tokens, device)
    for i in range(0, anchors.size, chunk):
        loss, _, n = objective.loss(batches(anchors[i:i + chunk]), generator, extra_hiding=extra_hiding)
        total += float(loss) * n
        weight += n
    return total / weight if weight else math.nan


def persistence_skill(model, canvas: Canvas, train: TrainConfig, embeddings, fields_of) -> float | None:
    """Skill over persistence on the validation windows, ``1 - L_model / L_persistence``, one masking draw
    for both (persistence is an untrained model: its correction head starts at zero)."""
    anchors = validation_anchors(canvas, train, limit=256)
    if anchors.size == 0 or not canvas.presence.any():
        return None
    persistence = build_world_model(canvas, fields_of, model.config, embeddings=embeddings)
    base = window_loss(persistence, canvas, anchors, train)
    loss = window_loss(model, canvas, anchors, train)
    if not (math.isfinite(base) and math.isfinite(loss)) or base <= 0:
        return None
    return 1.0 - loss / base
