"""Merging parents into a join node's starting point, and growing a deeper child from it.

Every node descends from one trunk (the fork point), so parents' parameters lie in one basin and
their average is a working model. Rules, per state-dict key:

* Shared parameters present with the same shape in several parents are merged: the element-wise
  ``mean``; ``weighted`` by each parent's observed training cells; or ``ties`` (trim each parent's
  change from the fork point to its largest ``ties_density`` share, elect a sign per element by total
  mass, average the changes that agree with it and add them to the fork point).
* A key only one parent has (a block only the deeper parent has) is copied from it.
* Field rows (one per field path) are averaged over the parents that have the field.
* A parent that never trained (its node had no data, so it is a copy of the fork point) adds no
  information: it is left out of the average and listed under ``skipped``; if no parent trained,
  they are all used.
* A parent that trained but kept its starting weights (no training step beat its start on validation,
  so every shared parameter still equals the fork point's) has no change to contribute either: it is
  left out of the shared parameters' average and listed under ``unchanged``, its field rows are still
  merged. Measured cause: ``basic_economics`` kept its start on the embedded default (seed 0), so the
  mean put ``econ_drives_finance`` halfway between ``basic_finance`` and the trunk, and the merge kept
  0.32 of ``basic_finance``'s gain on the masked loss (0.06 on the forecasting task).
* The per-(loop, block) gains of parents of different depths are merged column by column.

:func:`start_child` pours the merge into a child model. Keys no parent has are fresh; a block the
child adds beyond every parent gets zero branch scales (the identity), so the child starts out
computing exactly the merged model. :func:`start_node` gives a curriculum node its starting point (a
fork of the trunk, a copy of its one parent, or the merge of its parents); :func:`instantiate` builds a
model for any canvas carrying given weights (what the merge measures compare).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch

from gwm_model.curriculum.profiles import MergeSettings
from gwm_model.curriculum.weights import FIELD_KEY, NodeWeights
from gwm_model.nn.build import build_world_model
from gwm_model.nn.model import ModelConfig, WorldModelNet

METHODS = ("mean", "weighted", "ties")
LOOP_GAIN = "backbone.loop_gain"
BLOCK_KEY = re.compile(r"^backbone\.blocks\.(\d+)\.")


@dataclass
class MergeReport:
    method: str
    parents: list[str]
    used: list[str]
    skipped: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # trained, but still at the fork point: rows only
    weights: dict[str, float] = field(default_factory=dict)
    averaged: list[str] = field(default_factory=list)
    copied: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    zero_initialised_blocks: list[int] = field(default_factory=list)
    fields_averaged: int = 0
    fields_copied: int = 0
    fields_fresh: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def summary(self) -> str:
        return (f"{self.method} merge of {', '.join(self.used)}"
                + (f" (skipped untrained {', '.join(self.skipped)})" if self.skipped else "")
                + (f" (field rows only from {', '.join(self.unchanged)}: still at the fork point)"
                   if self.unchanged else "")
                + f": {len(self.averaged)} keys averaged, {len(self.copied)} copied, {len(self.fresh)} fresh; "
                  f"field rows {self.fields_averaged} averaged, {self.fields_copied} copied, {self.fields_fresh} "
                  f"fresh; zero-initialised blocks {self.zero_initialised_blocks or 'none'}")


def _ties(tensors: Sequence[torch.Tensor], base: torch.Tensor, density: float) -> torch.Tensor:
    deltas = []
    for t in tensors:
        delta = (t - base).flatten()
        keep = max(1, int(round(density * delta.numel())))
        threshold = delta.abs().kthvalue(delta.numel() - keep + 1).values if keep < delta.numel() else 0.0
        deltas.append(torch.where(delta.abs() >= threshold, delta, torch.zeros_like(delta)))
    stacked = torch.stack(deltas)
    sign = torch.sign(stacked.sum(dim=0))
    agree = (torch.sign(stacked) == sign) & (stacked != 0)
    merged = (stacked * agree).sum(dim=0) / agree.sum(dim=0).clamp(min=1)
    return base + merged.view_as(base)


def _combine(tensors: Sequence[torch.Tensor], weights: Sequence[float], method: str, base: torch.Tensor | None,
             density: float) -> torch.Tensor:
    stacked = torch.stack([t.float() for t in tensors])
    if method == "ties" and base is not None and base.shape == tensors[0].shape:
        return _ties([t.float() for t in tensors], base.float(), density).to(tensors[0].dtype)
    if method == "weighted":
        w = torch.tensor(weights, dtype=torch.float32)
        w = w / w.sum() if float(w.sum()) > 0 else torch.full_like(w, 1 / len(weights))
        return (stacked * w.view(-1, *([1] * (stacked.dim() - 1)))).sum(dim=0).to(tensors[0].dtype)
    return stacked.mean(dim=0).to(tensors[0].dtype)


def at_fork_point(parent: NodeWeights, base: NodeWeights) -> bool:
    """True when every shared parameter of ``parent`` equals the fork point's (same key, shape and values)."""
    return all(key in base.shared and base.shared[key].shape == tensor.shape and torch.equal(base.shared[key], tensor)
               for key, tensor in parent.shared.items())


def merge_parents(parents: Sequence[NodeWeights], method: str = "mean", base: NodeWeights | None = None,
                  ties_density: float = 0.2) -> tuple[NodeWeights, MergeReport]:
    """Merge ``parents`` (see the module docstring); ``base`` is the fork point (needed by ``ties``, and to tell
    a parent that is still at it)."""
    if method not in METHODS:
        raise ValueError(f"unknown merge method '{method}'. Fix: one of {', '.join(METHODS)}")
    if not parents:
        raise ValueError("merge_parents needs at least one parent")
    if method == "ties" and base is None:
        raise ValueError("the ties merge needs the fork point (base) the parents descend from")
    started = time.perf_counter()
    trained = [p for p in parents if p.trained]
    used = trained or list(parents)
    skipped = [p.name for p in parents if all(p is not u for u in used)]
    unchanged = [p for p in used if base is not None and at_fork_point(p, base)]
    if len(unchanged) == len(used):  # all still at the fork point: their plain average is the fork point
        unchanged = []
    movers = [p for p in used if all(p is not u for u in unchanged)]
    data = {p.name: p.data_size for p in used}
    report = MergeReport(method=method, parents=[p.name for p in parents], used=[p.name for p in used],
                         skipped=skipped, unchanged=[p.name for p in unchanged],
                         weights={p.name: data[p.name] for p in movers} if method == "weighted" else {})
    shared: dict[str, torch.Tensor] = {}
    keys = list(dict.fromkeys(k for p in movers for k in p.shared))
    for key in keys:
        holders = [p for p in movers if key in p.shared]
        if key == LOOP_GAIN:
            shared[key] = _merge_columns([p.shared[key] for p in holders])
            (report.averaged if len(holders) > 1 else report.copied).append(key)
            continue
        shape = holders[0].shared[key].shape
        same = [p for p in holders if p.shared[key].shape == shape]
        if len(same) == 1:
            shared[key] = same[0].shared[key].clone()
            report.copied.append(key)
        else:
            base_tensor = base.shared.get(key) if base is not None else None
            shared[key] = _combine([p.shared[key] for p in same], [data[p.name] for p in same], method,
                                   base_tensor, ties_density)
            report.averaged.append(key)
    rows: dict[str, torch.Tensor] = {}
    for path in dict.fromkeys(f for p in used for f in p.field_rows):
        holders = [p for p in used if path in p.field_rows]
        if len(holders) == 1:
            rows[path] = holders[0].field_rows[path].clone()
            report.fields_copied += 1
        else:
            base_row = base.field_rows.get(path) if base is not None else None
            rows[path] = _combine([p.field_rows[path] for p in holders], [data[p.name] for p in holders], method,
                                  base_row, ties_density)
            report.fields_averaged += 1
    deepest = max(movers, key=lambda p: p.config.n_layers)
    merged = NodeWeights("+".join(report.used), deepest.config, shared, rows)
    report.seconds = time.perf_counter() - started
    return merged, report


def _merge_columns(gains: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-(loop, block) gains of parents of different depths: block ``j``'s column is the mean over the
    parents that have block ``j``."""
    width = max(g.shape[1] for g in gains)
    total = torch.zeros(gains[0].shape[0], width)
    count = torch.zeros(width)
    for g in gains:
        total[:, :g.shape[1]] += g.float()
        count[:g.shape[1]] += 1
    return total / count.clamp(min=1)


def start_child(model: WorldModelNet, merged: NodeWeights, report: MergeReport | None = None) -> MergeReport:
    """Load ``merged`` into ``model`` (a child possibly deeper than every parent); see the module docstring.
    Fills ``report``'s fresh keys, zero-initialised blocks and field counts (a one-parent report if None)."""
    if report is None:
        report = MergeReport(method="copy", parents=[merged.name], used=[merged.name],
                             copied=[k for k in merged.shared])
        report.fields_copied = len(merged.field_rows)
    result = merged.apply_to(model)
    gain = merged.shared.get(LOOP_GAIN)
    if gain is not None and hasattr(model.backbone, "loop_gain") and gain.shape != model.backbone.loop_gain.shape:
        with torch.no_grad():
            target = model.backbone.loop_gain
            target.zero_()
            rows, cols = min(gain.shape[0], target.shape[0]), min(gain.shape[1], target.shape[1])
            target[:rows, :cols] = gain[:rows, :cols]
        result["fresh"] = [k for k in result["fresh"] if k != LOOP_GAIN]
    report.fresh = [k for k in result["fresh"] if not k.startswith(FIELD_KEY)]
    report.fields_fresh = sum(1 for k in result["fresh"] if k.startswith(FIELD_KEY))
    have = {int(m.group(1)) for k in merged.shared if (m := BLOCK_KEY.match(k))}
    added = sorted({int(m.group(1)) for k in report.fresh if (m := BLOCK_KEY.match(k))} - have)
    if added and hasattr(model.backbone, "zero_branches"):
        model.backbone.zero_branches(added)
    report.zero_initialised_blocks = added
    return report


def start_node(model: WorldModelNet, trunk: NodeWeights, parents: Sequence[NodeWeights], merge: MergeSettings
               ) -> tuple[NodeWeights | None, MergeReport]:
    """Pour a node's starting point into ``model``: with no parent a ``fork`` of ``trunk``, with one a ``copy``
    of it, with several their merge by ``merge.method``. Returns the merged weights (None for a fork or a
    copy) and the report."""
    if len(parents) <= 1:
        source, method = (parents[0], "copy") if parents else (trunk, "fork")
        report = MergeReport(method=method, parents=[source.name], used=[source.name], copied=list(source.shared))
        start_child(model, source, report)
        report.fields_copied = len(model.plan.fields) - report.fields_fresh
        return None, report
    merged, report = merge_parents(parents, merge.method, base=trunk, ties_density=merge.ties_density)
    start_child(model, merged, report)
    return merged, report


def instantiate(weights: NodeWeights, canvas, fields_of, config: ModelConfig | None = None,
                embeddings=None) -> WorldModelNet:
    """A model for ``canvas`` carrying ``weights`` (architecture ``config``, default the weights' own); blocks
    the weights lack start as identities, field rows they lack at zero."""
    model = build_world_model(canvas, fields_of, config or weights.config, embeddings=embeddings)
    start_child(model, weights)
    return model.eval()
