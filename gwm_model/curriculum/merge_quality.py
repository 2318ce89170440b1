"""How much a merge keeps, measured on each parent's own validation windows.

For every parent ``p`` of a join, on ``p``'s canvas and validation windows (one fixed masking draw,
so every model is scored on the same hidden cells):

* ``surviving_share``: of the gain ``p`` made over the fork point, the share the merged model keeps,
  ``(L_fork - L_merged) / (L_fork - L_p)`` (1: nothing lost; 0: back at the fork point); undefined
  when ``p`` gained nothing.
* ``forecast_surviving_share``: the same share on the forecasting task alone (the loss on the cells
  hidden by publication at the anchor, no masking draw: what the evaluation scores), so a merge that
  keeps a parent's interpolation but loses its forecasts shows. With a masked objective whose draw hides
  nothing publication does not (the ``cpu`` profile) the two tasks are one, and it is not computed twice.
* ``ensemble_gap``: ``L_merged - L_ensemble``, where the ensemble averages all parents' predictions
  (what one could get by keeping them apart); negative when the merge beats it.
* ``barrier``: the highest loss along the straight path from ``p``'s weights to the merged weights
  above the line joining its ends (0: no barrier, the two lie in one basin).
* after training, ``child_minus_parent``: ``L_child - L_p`` (negative: the child does better on
  ``p``'s own windows than ``p`` itself).

The summary keeps the worst case over parents. Every model is built on a parent's canvas by
:meth:`ParentView.model`; the parent's own model is built once per view and serves both the measures
before training and the comparison with the trained child after.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from gwm_model.canvas.canvas import Canvas
from gwm_model.curriculum.merge import instantiate
from gwm_model.curriculum.validation import validation_anchors, window_loss
from gwm_model.curriculum.weights import NodeWeights
from gwm_model.nn.model import ModelConfig
from gwm_model.training.config import TrainConfig
from gwm_model.training.objectives import hides_only_the_unpublished
from gwm_model.training.trainer import resolve_device

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
NO_WINDOWS = {"val_windows": 0, "note": "no validation windows with data"}


def deeper(a: ModelConfig, b: ModelConfig) -> ModelConfig:
    """The architecture that holds both (added blocks are identities, so neither model changes)."""
    return a if a.n_layers >= b.n_layers else b


@dataclass(eq=False)
class ParentView:
    """A parent as the measures see it: its weights, canvas and projection (for field specs).

    ``architecture``: what every model on this canvas is built with (it must hold all of them: a node's own,
    which may only grow); default: for each comparison, the deeper of the parent and the other model.
    """

    name: str
    weights: NodeWeights
    canvas: Canvas
    fields_of: object
    architecture: ModelConfig | None = None
    _own: tuple[ModelConfig, nn.Module] | None = field(default=None, init=False, repr=False)

    def windows(self, train: TrainConfig, limit: int) -> np.ndarray:
        """The validation anchors the measures use (none when the canvas has no data)."""
        return validation_anchors(self.canvas, train, limit) if self.canvas.presence.any() else np.zeros(0, np.int64)

    def config_against(self, other: NodeWeights) -> ModelConfig:
        return self.architecture or deeper(other.config, self.weights.config)

    def model(self, weights: NodeWeights, config: ModelConfig, train: TrainConfig, embeddings=None) -> nn.Module:
        """``weights`` in a model for this canvas (architecture ``config``) on ``train``'s device; the parent's
        own model is built once per architecture and kept for later measures."""
        if weights is self.weights and self._own is not None and self._own[0] == config:
            return self._own[1]
        model = instantiate(weights, self.canvas, self.fields_of, config, embeddings).to(resolve_device(train.device))
        if weights is self.weights:
            self._own = (config, model)
        return model


class MeanOfModels(nn.Module):
    """The ensemble: the average of several models' predictions (built on the same canvas)."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(models)
        self.plan, self.field_log_period = models[0].plan, models[0].field_log_period

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return torch.stack([m(*args, **kwargs) for m in self.members]).mean(dim=0)


def _lerp(a: nn.Module, b: nn.Module, alpha: float, into: nn.Module) -> nn.Module:
    sa, sb = a.state_dict(), b.state_dict()
    into.load_state_dict({k: torch.lerp(sa[k].float(), sb[k].float(), alpha).to(sa[k].dtype)
                          if sa[k].is_floating_point() else sa[k] for k in sa})
    return into


def _share(fork: float, parent: float, merged: float) -> float | None:
    gain = fork - parent
    if not math.isfinite(gain) or gain <= 1e-9 or not math.isfinite(merged):
        return None
    return (fork - merged) / gain


Measure = Callable[[ParentView, np.ndarray, ModelConfig], dict[str, object]]


def _on_each_parent(parents: Sequence[ParentView], other: NodeWeights, train: TrainConfig, max_windows: int,
                    measure: Measure) -> dict[str, dict[str, object]]:
    """``measure(p, anchors, config)`` for each parent ``p`` on its validation windows, with the architecture
    that holds ``p`` and ``other``; a parent without windows gets :data:`NO_WINDOWS`."""
    out: dict[str, dict[str, object]] = {}
    for p in parents:
        anchors = p.windows(train, max_windows)
        out[p.name] = measure(p, anchors, p.config_against(other)) if anchors.size else dict(NO_WINDOWS)
    return out


def merge_quality(parents: Sequence[ParentView], fork: NodeWeights, merged: NodeWeights, train: TrainConfig,
                  embeddings=None, max_windows: int = 64, alphas: Sequence[float] = ALPHAS) -> dict[str, object]:
    """The measures of the module docstring for each parent, and their worst cases."""
    one_task = train.objective == "masked" and hides_only_the_unpublished(train.masking)

    def measure(p: ParentView, anchors: np.ndarray, config: ModelConfig) -> dict[str, object]:
        own = p.model(p.weights, config, train, embeddings)
        merged_model = p.model(merged, config, train, embeddings)
        fork_model = p.model(fork, config, train, embeddings)
        losses = {"parent": window_loss(own, p.canvas, anchors, train),
                  "merged": window_loss(merged_model, p.canvas, anchors, train),
                  "fork": window_loss(fork_model, p.canvas, anchors, train)}
        if one_task:  # the masking draw hides only what publication hides: the same losses, not computed twice
            forecast = {k: losses[k] for k in ("parent", "merged", "fork")}
        else:
            forecast = {k: window_loss(m, p.canvas, anchors, train, extra_hiding=False)
                        for k, m in (("parent", own), ("merged", merged_model), ("fork", fork_model))}
        ensemble = MeanOfModels([p.model(q.weights, deeper(config, q.weights.config), train, embeddings)
                                 for q in parents])
        losses["ensemble"] = window_loss(ensemble, p.canvas, anchors, train)
        scratch = copy.deepcopy(own)  # holds the points between the parent and the merge
        path = []
        for alpha in alphas:
            if alpha == 0.0:
                path.append(losses["parent"])
            elif alpha == 1.0:
                path.append(losses["merged"])
            else:
                path.append(window_loss(_lerp(own, merged_model, alpha, scratch), p.canvas, anchors, train))
        barrier = max(v - ((1 - a) * path[0] + a * path[-1]) for a, v in zip(alphas, path, strict=True))
        return {"val_windows": int(anchors.size), **{f"loss_{k}": v for k, v in losses.items()},
                "surviving_share": _share(losses["fork"], losses["parent"], losses["merged"]),
                **{f"forecast_loss_{k}": v for k, v in forecast.items()},
                "forecast_surviving_share": _share(forecast["fork"], forecast["parent"], forecast["merged"]),
                "ensemble_gap": losses["merged"] - losses["ensemble"], "barrier": max(0.0, barrier),
                "path": [{"alpha": a, "loss": v} for a, v in zip(alphas, path, strict=True)]}

    per_parent = _on_each_parent(parents, merged, train, max_windows, measure)
    measured = [v for v in per_parent.values() if v.get("val_windows")]
    shares = [v["surviving_share"] for v in measured if v["surviving_share"] is not None]
    forecast_shares = [v["forecast_surviving_share"] for v in measured if v["forecast_surviving_share"] is not None]
    return {"parents": per_parent,
            "worst_surviving_share": min(shares) if shares else None,
            "worst_forecast_surviving_share": min(forecast_shares) if forecast_shares else None,
            "worst_ensemble_gap": max((v["ensemble_gap"] for v in measured), default=None),
            "max_barrier": max((v["barrier"] for v in measured), default=None)}


def child_against_parents(child: NodeWeights, parents: Sequence[ParentView], train: TrainConfig, embeddings=None,
                          max_windows: int = 64) -> dict[str, object]:
    """After training: the child's loss on each parent's validation windows against the parent's own."""

    def measure(p: ParentView, anchors: np.ndarray, config: ModelConfig) -> dict[str, object]:
        parent_loss = window_loss(p.model(p.weights, config, train, embeddings), p.canvas, anchors, train)
        child_loss = window_loss(p.model(child, config, train, embeddings), p.canvas, anchors, train)
        return {"val_windows": int(anchors.size), "loss_parent": parent_loss, "loss_child": child_loss,
                "child_minus_parent": child_loss - parent_loss}

    out = _on_each_parent(parents, child, train, max_windows, measure)
    diffs = [v["child_minus_parent"] for v in out.values() if v.get("val_windows")]
    return {"parents": out, "worst_child_minus_parent": max(diffs) if diffs else None}
