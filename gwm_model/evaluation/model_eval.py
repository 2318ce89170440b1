"""Evaluate a trained model on held-out windows next to baselines scored on exactly the same cells.

Scored cells: present in the window, hidden from the model's inputs by publication time alone (no
extra masking: the situation a forecaster is in at the anchor), of scalar output fields the model
has tokens for and that have at least ``min_train_cells`` training cells (a field normalised from a
handful of points is listed in ``excluded`` with the reason, not scored as if it had a history).

Forecasters: the model, ``persistence`` (last published value), ``climatology`` (training mean),
``naive`` (per field persistence, or climatology where it was significantly better on the *validation*
windows, :func:`~gwm_model.evaluation.naive.choose_naive`) and the requested ``ar`` / ``dfm``. Per field group
(the first two levels of the path) and per horizon (steps after the anchor; late releases inside the
context are bucketed as ``context``; ``all`` pools the anchor step and after) the table gives MSE,
MAE, ``skill`` against naive with a Diebold-Mariano test, and ``skill_persistence`` against
persistence. The model's forecast is gated (do no harm) with weights refitted at each test origin on
the validation and earlier test windows' errors published by then
(:mod:`gwm_model.evaluation.rolling_gate`), its nowcasts of late releases inside the context too (over
each field's AR nowcast from what was published); the weights fitted on everything published by the
canvas's end are the ones the checkpoint serves with. The summary's headline is the median skill
over field groups (:mod:`gwm_model.evaluation.headline`). Held-out-field imputation hides one field
everywhere and scores its reconstruction from the other fields against the field's training mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from gwm_model.canvas.normalise import MIN_NORM_CELLS
from gwm_model.evaluation.baselines import baseline_forecasts
from gwm_model.evaluation.forecastable import CLASSICAL, forecastable_groups, forecastable_summary
from gwm_model.evaluation.gate import apply_stacked_gate
from gwm_model.evaluation.headline import MIN_GROUP_CELLS, group_headline
from gwm_model.evaluation.naive import CLIMATOLOGY, PERSISTENCE, choose_naive, naive_forecast, validation_fit_end
from gwm_model.evaluation.rolling_gate import GateWindows, rolling_late_release_gate, rolling_stacked_gate
from gwm_model.evaluation.scores import imputation_scores, score_forecasts
from gwm_model.training.autoregression import visible_from
from gwm_model.training.batches import WindowBatches, eval_chunk
from gwm_model.training.run import FittedModel
from gwm_model.training.steps import Objective

MODEL = "model"
RAW = "model_raw"  # the network's forecast before the gate (an ablation row)
BASE = "model_base"  # the model's own base forecast, before the network's correction (an ablation row)
NAIVE = "naive"
MIN_TRAIN_CELLS = MIN_NORM_CELLS  # fewer training cells, and a field's normalisation and scores are noise


def field_group(path: str) -> str:
    return ".".join(path.split(".")[:2])


def _horizon_bucket(offset: int) -> str | int:
    return "context" if offset < 0 else int(offset)


@dataclass
class Evaluation:
    forecasts: pd.DataFrame
    imputation: pd.DataFrame
    residual_std: dict[str, dict[str, float]]
    summary: dict[str, object] = field(default_factory=dict)
    naive: dict[str, str] = field(default_factory=dict)  # field -> persistence | climatology
    excluded: dict[str, str] = field(default_factory=dict)  # field -> why it is not scored
    trace: dict[str, dict[str, list]] = field(default_factory=dict)  # one step ahead, per most-observed field
    gate: dict[str, float] = field(default_factory=dict)  # field -> weight of the network's correction to its base
    gate_base: dict[str, float] = field(default_factory=dict)  # field -> weight of the model's base forecast over naive
    gate_context: dict[str, float] = field(default_factory=dict)  # field -> weight of the network on late releases
    gate_context_base: dict[str, float] = field(default_factory=dict)  # field -> weight of its AR nowcast over naive

    def to_dict(self) -> dict[str, object]:
        def records(frame: pd.DataFrame) -> list[dict]:
            return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
                    for row in frame.astype(object).to_dict("records")]

        return {"summary": self.summary, "forecasts": records(self.forecasts), "imputation": records(self.imputation),
                "residual_std": self.residual_std, "naive": self.naive, "excluded": self.excluded,
                "trace": self.trace, "gate": self.gate, "gate_base": self.gate_base,
                "gate_context": self.gate_context, "gate_context_base": self.gate_context_base}


def _subsample(anchors: np.ndarray, limit: int | None) -> np.ndarray:
    if limit is None or anchors.size <= limit:
        return anchors
    return anchors[np.linspace(0, anchors.size - 1, limit).round().astype(np.int64)]


@torch.no_grad()
def model_forecasts(objective: Objective, batches: WindowBatches, anchors: np.ndarray,
                    input_fields: torch.Tensor | None = None, wanted_fields: torch.Tensor | None = None,
                    samples: int = 8, steps: int = 10, seed: int = 0, chunk: int | None = None) -> np.ndarray:
    """``(n, L, F)`` predictions (normalised units) of hidden scalar cells; NaN for vector/inactive fields. ``chunk``
    windows a pass (None: :func:`~gwm_model.training.batches.eval_chunk`)."""
    canvas = batches.canvas
    scalar = np.asarray(canvas.slots) == 1
    first_slot = torch.from_numpy(canvas.offsets[:-1]).to(batches.device)
    generator = torch.Generator(device=batches.device).manual_seed(seed)
    out = []
    objective.model.eval()
    chunk = chunk or eval_chunk(batches.window, objective.model.plan.num_tokens, batches.device)
    for lo in range(0, anchors.size, chunk):
        batch = batches(anchors[lo:lo + chunk], input_fields)
        wanted = ~batch["visible"] & objective.model_fields
        if wanted_fields is not None:
            wanted &= wanted_fields
        mean, _ = objective.predict(batch, batch["visible"], wanted, samples=samples, steps=steps, generator=generator)
        out.append(mean[..., first_slot].float().cpu().numpy())
    pred = np.concatenate(out) if out else np.zeros((0, batches.window, len(canvas.slots)), np.float32)
    usable = scalar & objective.model_fields.cpu().numpy()
    pred[..., ~usable] = np.nan
    return pred


def base_forecasts(batches: WindowBatches, anchors: np.ndarray) -> np.ndarray | None:
    """``(n, L, F)`` the model's base forecast of each scalar field (NaN where it has none) at and after the anchor,
    and before it the AR nowcast of each late release from what was published by the anchor (the gate's base there;
    the network reads no base before the anchor); None without a base."""
    base = batches.base
    if base is None or base.kind == "persistence":
        return None
    canvas = batches.canvas
    anchors = np.asarray(anchors, dtype=np.int64)
    offsets = batches.step_offset.cpu().numpy()
    out = np.full((anchors.size, offsets.size, len(canvas.paths)), np.nan, dtype=np.float32)
    made = base.forecast_compact(canvas, anchors, canvas.axis.cutoffs_us[anchors] - 1, offsets, late=True)
    if made is not None:
        out[..., made[0]] = made[1]
    return out


def _truth(batches: WindowBatches, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scalar truth ``(n, L, F)``, presence and publication visibility for ``anchors``."""
    first_slot = torch.from_numpy(batches.canvas.offsets[:-1]).to(batches.device)
    truth, present, visible = [], [], []
    for lo in range(0, anchors.size, 256):
        b = batches(anchors[lo:lo + 256])
        truth.append(b["targets"][..., first_slot].cpu().numpy())
        present.append(b["present"].cpu().numpy())
        visible.append(b["visible"].cpu().numpy())
    return np.concatenate(truth), np.concatenate(present), np.concatenate(visible)


def without_history(canvas, outputs: np.ndarray, min_train_cells: int) -> dict[str, str]:
    """Output fields with data but fewer than ``min_train_cells`` training cells, with the reason."""
    out = {}
    for f in np.flatnonzero(outputs & canvas.presence.any(axis=0)):
        path = canvas.paths[f]
        n = int(canvas.stats.count.get(path, 0))
        if n < min_train_cells:
            out[path] = (f"{n} training cells (fewer than {min_train_cells}): too little history to normalise and "
                         "score it")
    return out


def _scores(truth: np.ndarray, scored: np.ndarray, predictions: dict[str, np.ndarray], groups: list[str],
            offsets: list[int], reference: str) -> pd.DataFrame:
    table = score_forecasts(truth, scored, predictions, groups, offsets, reference=reference,
                            horizon_buckets=_horizon_bucket)
    pooled = score_forecasts(truth, scored, predictions, groups, offsets, reference=reference,
                             horizon_buckets=lambda o: "all" if o >= 0 else None)
    return pd.concat([table, pooled], ignore_index=True)


def evaluate_model(objective: Objective, batches: WindowBatches, anchors: np.ndarray, train_end_step: int,
                   baselines: Sequence[str] = ("persistence", "ar", "dfm"), max_anchors: int | None = 300,
                   imputation_fields: Sequence[str] | None = None, max_imputation_fields: int = 6,
                   samples: int = 8, sample_steps: int = 10, dfm_options: dict | None = None,
                   validation_anchors: np.ndarray | None = None, validation_batches: WindowBatches | None = None,
                   min_train_cells: int = MIN_TRAIN_CELLS) -> Evaluation:
    """Scores of the model, the naive forecasts and ``baselines`` on ``anchors`` (subsampled evenly to
    ``max_anchors``); each field's naive forecaster is chosen on ``validation_anchors`` (none: persistence), and the
    gate is fitted there with ``validation_batches`` (default ``batches``: pass the windows whose base forecast was
    fitted before validation when ``batches``' base was refitted up to ``train_end``)."""
    canvas = batches.canvas
    anchors = _subsample(np.asarray(anchors, dtype=np.int64), max_anchors)
    if anchors.size == 0:
        raise ValueError("no test windows to evaluate on: the canvas ends too soon after train_end. Fix: a later "
                         "canvas end, an earlier train_end, or a shorter context/horizon")
    truth, present, visible = _truth(batches, anchors)
    model_fields = objective.model_fields.cpu().numpy()
    outputs = model_fields & (np.asarray(canvas.slots) == 1) & (canvas.loss_weight > 0)
    excluded = without_history(canvas, outputs, min_train_cells)
    outputs &= ~np.isin(np.asarray(canvas.paths), list(excluded))
    scored = present & ~visible & outputs
    predictions = {MODEL: model_forecasts(objective, batches, anchors, samples=samples, steps=sample_steps)}
    wanted = ["persistence", "mean", *[b for b in baselines if b not in ("persistence", "mean")]]
    made = baseline_forecasts(canvas, anchors, batches.context, batches.horizon, train_end_step, models=wanted,
                              **(dfm_options or {}))
    made[CLIMATOLOGY] = made.pop("mean")
    naive = choose_naive(canvas, np.zeros(0, np.int64) if validation_anchors is None else validation_anchors,
                         batches.context, batches.horizon, train_end_step)
    use_climatology = np.array([naive.get(p) == CLIMATOLOGY for p in canvas.paths])
    predictions[NAIVE] = np.where(use_climatology[None, None, :], made[CLIMATOLOGY], made[PERSISTENCE])
    predictions.update(made)
    groups = [field_group(p) for p in canvas.paths]
    offsets = batches.step_offset.cpu().numpy().tolist()
    history = _validation_windows(objective, validation_batches or batches, validation_anchors, max_anchors,
                                  train_end_step, outputs, use_climatology, samples, sample_steps)
    ahead = np.asarray(offsets) >= 0
    base = base_forecasts(batches, anchors)
    predictions[RAW] = predictions[MODEL]
    predictions[MODEL] = predictions[RAW].copy()
    windows = GateWindows(anchors, predictions[RAW], base, predictions[NAIVE], truth, scored,
                          _published(canvas, anchors, np.asarray(offsets)))
    target = _cells(windows, ahead)
    a, b, gate_base, gate = rolling_stacked_gate(_cells(history, ahead), target, canvas.num_steps - 1, groups)
    predictions[MODEL][:, ahead] = apply_stacked_gate(target.model, target.base, target.naive, a[:, None, :],
                                                      b[:, None, :])
    gate_context_base, gate_context = _gate_late_releases(history, windows, ~ahead, canvas.num_steps - 1,
                                                          predictions[MODEL], groups)
    if base is not None:
        predictions[BASE] = np.where(np.isfinite(predictions[RAW]), base, np.nan)
    table = _scores(truth, scored, predictions, groups, offsets, NAIVE)
    against_persistence = _scores(truth, scored, predictions, groups, offsets, PERSISTENCE)
    table["skill_persistence"] = against_persistence["skill"].to_numpy()
    table["dm_pvalue_persistence"] = against_persistence["dm_pvalue"].to_numpy()

    residual: dict[str, dict[str, float]] = {}
    err = (predictions[MODEL] - truth) ** 2
    for f in np.flatnonzero(outputs):
        per_offset = {}
        for i, off in enumerate(offsets):
            cells = scored[:, i, f] & np.isfinite(err[:, i, f])
            if off >= 0 and cells.sum() >= 3:
                per_offset[str(off)] = float(np.sqrt(err[cells, i, f].mean()))
        if per_offset:
            residual[canvas.paths[f]] = per_offset

    imputation = _imputation(objective, batches, anchors, truth, present, outputs, imputation_fields,
                             max_imputation_fields, samples, sample_steps)
    summary = _summary(table, imputation)
    if validation_anchors is not None and len(validation_anchors):
        found = forecastable_groups(canvas, _subsample(np.asarray(validation_anchors, dtype=np.int64), max_anchors),
                                    batches.context, batches.horizon, train_end_step, outputs, groups,
                                    use_climatology, classical=[b for b in baselines if b in CLASSICAL],
                                    dfm_options=dfm_options)
        summary.update(forecastable_summary(table, found))
    if not scored.any():
        summary["reason"] = ("no scored cells: no output field with enough training history has a hidden cell in "
                             f"the {anchors.size} test windows" + (f" ({len(excluded)} field(s) excluded)"
                                                                   if excluded else ""))
    elif not summary["groups_scored"]:
        small = ", ".join(f"{g} {n}" for g, n in summary["groups_too_small"].items())
        summary["reason"] = f"no field group has {MIN_GROUP_CELLS} scored cells ({small})"
    kept = [canvas.paths[f] for f in np.flatnonzero(outputs) if canvas.paths[f] in naive]
    return Evaluation(table, imputation, residual, summary, naive={p: naive[p] for p in kept}, excluded=excluded,
                      trace=_trace(canvas, anchors, offsets, truth, scored, predictions),
                      gate={p: float(gate[canvas.field_index(p)]) for p in kept},
                      gate_base={p: float(gate_base[canvas.field_index(p)]) for p in kept},
                      gate_context={p: float(gate_context[canvas.field_index(p)]) for p in kept},
                      gate_context_base={p: float(gate_context_base[canvas.field_index(p)]) for p in kept})


def _published(canvas, anchors: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``(n, L, F)`` the first anchor step at which each window cell's value is visible (``T``: never)."""
    return visible_from(canvas)[anchors[:, None] + offsets[None, :]]


def _cells(windows: GateWindows | None, rows: np.ndarray) -> GateWindows | None:
    """The window ``rows`` (a boolean mask over the window's offsets) of ``windows``."""
    return None if windows is None else windows.take(rows=rows)


def _gate_late_releases(history: GateWindows | None, windows: GateWindows, late: np.ndarray, end_step: int,
                        out: np.ndarray, groups: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Gate the nowcasts of the late releases inside the context (window rows ``late``) in ``out`` in place
    (:func:`~gwm_model.evaluation.rolling_gate.rolling_late_release_gate`) and return the weights served with
    there: of the AR nowcast over naive (per group) and of the network over that (per field)."""
    if not late.any():
        F = windows.model.shape[-1]
        return np.zeros(F), np.zeros(F)
    gated, a, b = rolling_late_release_gate(_cells(history, late), _cells(windows, late), end_step, groups)
    out[:, late] = gated
    return a, b


def _validation_windows(objective: Objective, batches: WindowBatches, anchors: np.ndarray | None,
                        max_anchors: int | None, train_end_step: int, outputs: np.ndarray,
                        use_climatology: np.ndarray, samples: int, sample_steps: int) -> GateWindows | None:
    """The validation windows (every row: the late releases inside the context and the cells at and after the
    anchor), as the gates' history (:func:`~gwm_model.evaluation.rolling_gate.rolling_stacked_gate`); None without
    validation windows."""
    canvas = batches.canvas
    if anchors is None or not len(anchors):
        return None
    anchors = _subsample(np.asarray(anchors, dtype=np.int64), max_anchors)
    truth, present, visible = _truth(batches, anchors)
    offsets = batches.step_offset.cpu().numpy()
    scored = present & ~visible & outputs
    model = model_forecasts(objective, batches, anchors, samples=samples, steps=sample_steps)
    naive = naive_forecast(canvas, anchors, batches.context, batches.horizon,
                           validation_fit_end(anchors, train_end_step), use_climatology)
    return GateWindows(anchors, model, base_forecasts(batches, anchors), naive, truth, scored,
                       _published(canvas, anchors, offsets))


def evaluate_fitted(fitted: FittedModel, baselines: Sequence[str] = ("persistence", "ar", "dfm"),
                    max_anchors: int | None = 300) -> Evaluation | None:
    """``fitted`` scored on its canvas's test windows (after the training period) next to ``baselines``, with
    its training configuration's diffusion sampling; None when the canvas has no test windows."""
    trainer = fitted.trainer
    if not trainer.split.test.size:
        return None
    return evaluate_model(trainer.objective, trainer.serving_batches, trainer.split.test, trainer.split.train_end_step,
                          baselines=baselines, max_anchors=max_anchors, samples=trainer.config.diffusion_samples,
                          sample_steps=trainer.config.diffusion_steps, validation_anchors=trainer.split.val,
                          validation_batches=trainer.batches)


def _trace(canvas, anchors: np.ndarray, offsets: list[int], truth: np.ndarray, scored: np.ndarray,
           predictions: dict[str, np.ndarray], limit: int = 4, names: Sequence[str] = (MODEL, NAIVE, "ar")
           ) -> dict[str, dict[str, list]]:
    """One step ahead on the test windows, in each field's own units, for the ``limit`` fields with the most scored
    cells there: ``date`` (the target step), ``actual`` and each of ``names`` that was evaluated (None: no cell)."""
    if 1 not in offsets:
        return {}
    row = offsets.index(1)
    counts = scored[:, row, :].sum(axis=0)
    chosen = [int(f) for f in np.argsort(-counts, kind="stable")[:limit] if counts[f] > 0]
    dates = [str(d) for d in canvas.axis.starts[np.minimum(anchors + 1, canvas.num_steps - 1)]]
    def values(array: np.ndarray, f: int) -> list:
        mu, sd = canvas.stats.mean[canvas.paths[f]], canvas.stats.std[canvas.paths[f]]
        return [float(v) * sd + mu if k and np.isfinite(v) else None
                for v, k in zip(array[:, row, f], scored[:, row, f], strict=True)]

    return {canvas.paths[f]: {"date": dates, "actual": values(truth, f),
                              **{n: values(predictions[n], f) for n in names if n in predictions}} for f in chosen}


def _imputation(objective: Objective, batches: WindowBatches, anchors: np.ndarray, truth: np.ndarray,
                present: np.ndarray, outputs: np.ndarray, fields: Sequence[str] | None, limit: int,
                samples: int, steps: int) -> pd.DataFrame:
    canvas = batches.canvas
    if fields is None:
        observed = present.sum(axis=(0, 1))
        candidates = [f for f in np.argsort(-observed, kind="stable") if outputs[f] and observed[f] > 0]
        chosen = [int(f) for f in candidates[:limit]]
    else:
        chosen = [canvas.field_index(p) for p in fields]
    chosen = chosen[:anchors.size]
    rows = []
    for i, f in enumerate(chosen):
        # field i is held out in every len(chosen)-th test window from the i-th: the windows overlap, so each field is
        # still imputed across the whole test period, and all of them together cost one pass over the test windows
        windows = np.arange(i, anchors.size, len(chosen))
        keep = torch.ones(len(canvas.slots), dtype=torch.bool, device=batches.device)
        keep[f] = False
        only = ~keep
        pred = model_forecasts(objective, batches, anchors[windows], input_fields=keep, wanted_fields=only,
                               samples=samples, steps=steps)
        held = np.zeros_like(present[windows])
        held[..., f] = present[windows, :, f]
        frame = imputation_scores(truth[windows], held, pred, np.zeros(len(canvas.slots)))
        row = frame[frame["group"] == "all"].iloc[0].to_dict()
        row["field"] = canvas.paths[f]
        rows.append(row)
    return pd.DataFrame(rows, columns=["field", "n_cells", "mse", "mse_mean", "ratio", "skill"])


def _summary(table: pd.DataFrame, imputation: pd.DataFrame) -> dict[str, object]:
    def pick(model: str, horizon) -> pd.Series | None:
        rows = table[(table["model"] == model) & (table["group"] == "all") & (table["horizon"] == horizon)]
        return rows.iloc[0] if len(rows) else None

    out: dict[str, object] = {}
    overall = pick(MODEL, "all")
    if overall is not None:  # pooled (kept for reference; the headline is the median over groups below)
        out.update(skill=float(overall["skill"]), mse=float(overall["mse"]), n_cells=int(overall["n_cells"]),
                   dm_stat=float(overall["dm_stat"]), dm_pvalue=float(overall["dm_pvalue"]),
                   skill_persistence=float(overall["skill_persistence"]))
    out.update(group_headline(table))
    for name in table["model"].unique():
        row = pick(name, "all")
        if row is not None:  # skill on the cells both it and persistence forecast; mse on the cells it covers
            out[f"mse_{name}"] = float(row["mse"])
            out[f"skill_{name}"] = float(row["skill"])
            out[f"cells_{name}"] = int(row["n_cells"])
    if len(imputation):
        out["imputation_ratio"] = float(imputation["mse"].sum() / max(imputation["mse_mean"].sum(), 1e-12))
    return out
