"""Training throughput and skill of a tier-0 node (``basic_finance``) on the embedded default, cpu profile.

Input: the node's canvas built from the embedded default exactly as the ``canvas/basic_finance``
asset builds it (its projection, weekly axis from the curriculum start to the last observation,
``train_end`` at the curriculum's train fraction).

- Throughput: ``STEPS`` optimiser steps of the masked objective, reported as windows/s and
  tokens/s (window steps x active tokens), and time per step split into data (cutting the
  windows), forward and backward + update. Medians over ``ROUNDS`` runs.
- Baseline, same run: the same tokens (same ``d_model``, same number of block applications) through
  PyTorch's stock ``nn.TransformerEncoder`` with full attention over all ``L x P`` tokens of a
  window, forward + backward + AdamW step, reported as ``looped_vs_stock_transformer`` (> 1: ours is
  faster). This is the cost a model without factorised, connectivity-masked attention would pay.
- Skill: one full training run (``SKILL_STEPS`` steps, early stopping) and the evaluation on the
  test windows after ``train_end``: skill against persistence with the Diebold-Mariano p-value, and
  the MSE of persistence, AR and DynamicFactorMQ on the same cells. Honest whatever the sign.
- GPU: when CUDA is available the same throughput measurement runs with the h100 profile (bf16) and
  reports achieved TFLOP/s from :func:`gwm_model.nn.model.flops_per_window` (x3 for backward).
"""

from __future__ import annotations

import datetime as dt
import statistics
import time

import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import nn

from bench.canvas_build import observations_table
from gwm_model.canvas import build_canvas, make_time_axis
from gwm_model.curriculum.spec import STANDARD_CURRICULUM, load_curriculum
from gwm_model.evaluation.train_and_evaluate import train_and_evaluate
from gwm_model.nn.build import build_world_model
from gwm_model.nn.model import ModelConfig, flops_per_window
from gwm_model.schema import default_world
from gwm_model.training.config import TrainConfig
from gwm_model.training.trainer import Trainer

NODE = "basic_finance"
CPU_MODEL = ModelConfig(d_model=64, n_heads=4, n_layers=2, n_loops=2)
CPU_TRAIN = TrainConfig(context=26, horizon=4, batch_size=32, steps=400, lr=1e-3, warmup_steps=40, patience=6,
                        loggers=())
H100_MODEL = ModelConfig(d_model=128, n_heads=8, n_layers=6, n_loops=3)
STEPS, ROUNDS, SKILL_STEPS = 20, 3, 400


def node_canvas():
    world = default_world()
    node = load_curriculum(STANDARD_CURRICULUM, world).nodes[NODE]
    projection = node.projection(world)
    table = observations_table()
    mine = table.filter(pc.is_in(table["field_path"], value_set=pa.array(projection.paths)))
    first, last = pc.min(mine["ts"]).as_py(), pc.max(mine["ts"]).as_py()
    start = max(node.canvas.start or first, first)
    axis = make_time_axis(start, node.canvas.end or last, node.canvas.frequency)
    train_end = axis.starts[int(len(axis) * node.canvas.train_fraction) - 1].astype(dt.date)
    return build_canvas(mine, projection, axis, train_end), projection


def throughput(canvas, projection, model_config: ModelConfig, train: TrainConfig) -> dict[str, float]:
    rounds = []
    for _ in range(ROUNDS):
        model = build_world_model(canvas, projection, model_config)
        trainer = Trainer(model, canvas, TrainConfig(**{**train.to_dict(), "steps": STEPS, "val_fraction": 0.0}),
                          loggers=[])
        rounds.append(trainer.fit().timing)
    steps = rounds[0]["steps"]
    out = {k: statistics.median(r[k] for r in rounds) for k in ("windows_per_s", "tokens_per_s")}
    for part in ("data", "forward", "backward"):
        out[f"{part}_ms_per_step"] = 1000 * statistics.median(r[f"{part}_s"] for r in rounds) / steps
    out.update(tokens_per_window=rounds[0]["tokens_per_window"], active_tokens=model.plan.num_tokens,
               parameters=model.parameter_counts()["total"], device=str(trainer.device))
    if trainer.device.type == "cuda":
        flops = 3 * flops_per_window(model_config, model.plan.num_tokens, train.window)
        out["achieved_tflops"] = flops * out["windows_per_s"] / 1e12
    return out


def stock_transformer(model_config: ModelConfig, tokens: int, window: int, batch: int) -> float:
    """Windows/s of nn.TransformerEncoder, full attention over the window's tokens, fwd + bwd + step."""
    d = model_config.d_model
    layer = nn.TransformerEncoderLayer(d, model_config.n_heads, model_config.ff_mult * d, dropout=0.0,
                                       batch_first=True, norm_first=True)
    encoder = nn.TransformerEncoder(layer, model_config.n_layers * model_config.n_loops, enable_nested_tensor=False)
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=1e-3)
    x = torch.randn(batch, tokens * window, d)
    samples = []
    for i in range(STEPS + 2):
        start = time.perf_counter()
        loss = encoder(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i >= 2:
            samples.append(time.perf_counter() - start)
    return batch / statistics.median(samples)


def run() -> dict[str, object]:
    torch.manual_seed(0)
    canvas, projection = node_canvas()
    result: dict[str, object] = {"node": NODE, "canvas_steps": canvas.num_steps,
                                 "fields_with_data": int(canvas.presence.any(axis=0).sum()),
                                 "cpu_profile": {"model": CPU_MODEL.to_dict(),
                                                 "train": {k: v for k, v in CPU_TRAIN.to_dict().items()
                                                           if k in ("context", "horizon", "batch_size", "lr")}}}
    ours = throughput(canvas, projection, CPU_MODEL, CPU_TRAIN)
    stock = stock_transformer(CPU_MODEL, int(ours["active_tokens"]), CPU_TRAIN.window, CPU_TRAIN.batch_size)
    result["throughput_cpu"] = {**ours, "stock_transformer_windows_per_s": stock,
                                "looped_vs_stock_transformer": ours["windows_per_s"] / stock}
    started = time.perf_counter()
    skill_train = TrainConfig(**{**CPU_TRAIN.to_dict(), "steps": SKILL_STEPS})
    trained = train_and_evaluate(canvas, projection, CPU_MODEL, skill_train)
    evaluation = trained.evaluation
    result["skill_cpu"] = {"seconds": time.perf_counter() - started, "stopped": trained.history.stopped,
                           "best_epoch": trained.history.best_epoch, **(evaluation.summary if evaluation else {})}
    if torch.cuda.is_available():
        h100 = TrainConfig(**{**CPU_TRAIN.to_dict(), "batch_size": 64, "lr": 2e-4, "device": "cuda"})
        result["throughput_h100_profile"] = throughput(canvas, projection, H100_MODEL, h100)
    else:
        result["throughput_h100_profile"] = "not measured: no CUDA device in this run"
    return result
