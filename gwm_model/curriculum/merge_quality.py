"""How much a merge keeps, measured on each parent's own validation windows.

For every parent ``p`` of a join, on ``p``'s canvas and validation windows (one fixed masking draw,
so every model is scored on the same hidden cells):

* ``surviving_share``: of the gain ``p`` made over the fork point, the share the merged model keeps,
  ``(L_fork - L_merged) / (L_fork - L_p)`` (1: nothing lost; 0: back at the fork point); undefined
  when ``p`` gained nothing.
* ``ensemble_gap``: ``L_merged - L_ensemble``, where the ensemble averages all parents' predictions
  (what one could get by keeping them apart); negative when the merge beats it.
* ``barrier``: the highest loss along the straight path from ``p``'s weights to the merged weights
  above the line joining its ends (0: no barrier, the two lie in one basin).
* after training, ``child_minus_parent``: ``L_child - L_p`` (negative: the child does better on
  ``p``'s own windows than ``p`` itself).

The summary keeps the worst case over parents.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from gwm_model.canvas.canvas import Canvas
from gwm_model.curriculum.weights import NodeWeights, instantiate
from gwm_model.training.batches import WindowBatches, split_anchors
from gwm_model.training.config import TrainConfig
from gwm_model.training.steps import Objective
from gwm_model.training.trainer import resolve_device

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass
class ParentView:
    """A parent as the quality measures need it: its weights, canvas and projection (for field specs)."""

    name: str
    weights: NodeWeights
    canvas: Canvas
    fields_of: object


class MeanOfModels(nn.Module):
    """The ensemble: the average of several models' predictions (built on the same canvas)."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(models)
        self.plan, self.field_log_period = models[0].plan, models[0].field_log_period

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return torch.stack([m(*args, **kwargs) for m in self.members]).mean(dim=0)


def validation_anchors(canvas: Canvas, train: TrainConfig, limit: int = 64) -> np.ndarray:
    """The canvas's validation anchors for ``train``'s window, thinned evenly to at most ``limit``."""
    try:
        val = split_anchors(canvas, train.context, train.horizon, train.val_fraction).val
    except ValueError:
        return np.zeros(0, dtype=np.int64)
    if val.size > limit:
        val = val[np.linspace(0, val.size - 1, limit).round().astype(int)]
    return val


@torch.no_grad()
def window_loss(model: nn.Module, canvas: Canvas, anchors: np.ndarray, train: TrainConfig, seed: int = 1234) -> float:
    """Objective loss of ``model`` on ``anchors`` of ``canvas`` with a fixed masking draw (nan if none scored)."""
    if anchors.size == 0:
        return math.nan
    device = next(model.parameters()).device  # evaluated where the model lives (CPU or the training GPU)
    batches = WindowBatches(canvas, train.context, train.horizon, device)
    objective = Objective(model, batches, train.objective, train.masking)
    generator = torch.Generator(device=device).manual_seed(seed)
    total, weight = 0.0, 0
    model.eval()
    for i in range(0, anchors.size, 64):
        loss, _, n = objective.loss(batches(anchors[i:i + 64]), generator)
        total += float(loss) * n
        weight += n
    return total / weight if weight else math.nan


def _on(model: nn.Module, train: TrainConfig) -> nn.Module:
    return model.to(resolve_device(train.device))


def _lerp(a: nn.Module, b: nn.Module, alpha: float, into: nn.Module) -> nn.Module:
    sa, sb = a.state_dict(), b.state_dict()
    into.load_state_dict({k: torch.lerp(sa[k].float(), sb[k].float(), alpha).to(sa[k].dtype)
                          if sa[k].is_floating_point() else sa[k] for k in sa})
    return into


def _parent_windows(p: ParentView, other: NodeWeights, train: TrainConfig, limit: int
                    ) -> tuple[np.ndarray, object]:
    """``p``'s validation anchors (empty when it has none with data) and the architecture that holds both
    ``p`` and ``other``: the deeper of the two (added blocks are identities, so neither model changes)."""
    anchors = validation_anchors(p.canvas, train, limit) if p.canvas.presence.any() else np.zeros(0, np.int64)
    config = other.config if other.config.n_layers >= p.weights.config.n_layers else p.weights.config
    return anchors, config


NO_WINDOWS = {"val_windows": 0, "note": "no validation windows with data"}


def _share(fork: float, parent: float, merged: float) -> float | None:
    gain = fork - parent
    if not math.isfinite(gain) or gain <= 1e-9 or not math.isfinite(merged):
        return None
    return (fork - merged) / gain


def merge_quality(parents: Sequence[ParentView], fork: NodeWeights, merged: NodeWeights, train: TrainConfig,
                  embeddings=None, max_windows: int = 64, alphas: Sequence[float] = ALPHAS) -> dict[str, object]:
    """The measures of the module docstring for each parent, and their worst cases."""
    per_parent: dict[str, dict[str, object]] = {}
    for p in parents:
        anchors, config = _parent_windows(p, merged, train, max_windows)
        if anchors.size == 0:
            per_parent[p.name] = dict(NO_WINDOWS)
            continue
        own = _on(instantiate(p.weights, p.canvas, p.fields_of, config, embeddings), train)
        merged_model = _on(instantiate(merged, p.canvas, p.fields_of, config, embeddings), train)
        fork_model = _on(instantiate(fork, p.canvas, p.fields_of, config, embeddings), train)
        losses = {name: window_loss(m, p.canvas, anchors, train) for name, m in
                  (("parent", own), ("merged", merged_model), ("fork", fork_model))}
        ensemble = MeanOfModels([_on(instantiate(q.weights, p.canvas, p.fields_of, None, embeddings), train)
                                 for q in parents])
        losses["ensemble"] = window_loss(ensemble, p.canvas, anchors, train)
        scratch = _on(instantiate(merged, p.canvas, p.fields_of, config, embeddings), train)
        path = []
        for alpha in alphas:
            if alpha == 0.0:
                path.append(losses["parent"])
            elif alpha == 1.0:
                path.append(losses["merged"])
            else:
                path.append(window_loss(_lerp(own, merged_model, alpha, scratch), p.canvas, anchors, train))
        barrier = max(v - ((1 - a) * path[0] + a * path[-1]) for a, v in zip(alphas, path, strict=True))
        per_parent[p.name] = {"val_windows": int(anchors.size), **{f"loss_{k}": v for k, v in losses.items()},
                              "surviving_share": _share(losses["fork"], losses["parent"], losses["merged"]),
                              "ensemble_gap": losses["merged"] - losses["ensemble"], "barrier": max(0.0, barrier),
                              "path": [{"alpha": a, "loss": v} for a, v in zip(alphas, path, strict=True)]}
    measured = [v for v in per_parent.values() if v.get("val_windows")]
    shares = [v["surviving_share"] for v in measured if v["surviving_share"] is not None]
    return {"parents": per_parent,
            "worst_surviving_share": min(shares) if shares else None,
            "worst_ensemble_gap": max((v["ensemble_gap"] for v in measured), default=None),
            "max_barrier": max((v["barrier"] for v in measured), default=None)}


def child_against_parents(child: NodeWeights, parents: Sequence[ParentView], train: TrainConfig, embeddings=None,
                          max_windows: int = 64) -> dict[str, object]:
    """After training: the child's loss on each parent's validation windows against the parent's own."""
    out: dict[str, dict[str, object]] = {}
    for p in parents:
        anchors, config = _parent_windows(p, child, train, max_windows)
        if anchors.size == 0:
            out[p.name] = dict(NO_WINDOWS)
            continue
        parent_model = _on(instantiate(p.weights, p.canvas, p.fields_of, config, embeddings), train)
        child_model = _on(instantiate(child, p.canvas, p.fields_of, config, embeddings), train)
        parent_loss = window_loss(parent_model, p.canvas, anchors, train)
        child_loss = window_loss(child_model, p.canvas, anchors, train)
        out[p.name] = {"val_windows": int(anchors.size), "loss_parent": parent_loss, "loss_child": child_loss,
                       "child_minus_parent": child_loss - parent_loss}
    diffs = [v["child_minus_parent"] for v in out.values() if v.get("val_windows")]
    return {"parents": out, "worst_child_minus_parent": max(diffs) if diffs else None}
