"""Evaluate a trained model on held-out windows next to baselines scored on exactly the same cells.

Scored cells: present in the window, hidden from the model's inputs by publication time alone (no
extra masking: the situation a forecaster is in at the anchor), of scalar output fields the model
has tokens for. Per field group (the first two levels of the path) and per horizon (steps after the
anchor; late releases inside the context are bucketed as ``context``) the table gives MSE, MAE,
skill against persistence and a Diebold-Mariano test. Held-out-field imputation hides one field
everywhere and scores its reconstruction from the other fields against the field's training mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from gwm_model.evaluation.baselines import baseline_forecasts
from gwm_model.evaluation.scores import imputation_scores, score_forecasts
from gwm_model.training.batches import WindowBatches
from gwm_model.training.run import FittedModel
from gwm_model.training.steps import Objective

MODEL = "model"


def field_group(path: str) -> str:
    return ".".join(path.split(".")[:2])


def _horizon_bucket(offset: int) -> str | int:
    return "context" if offset < 0 else int(offset)


@dataclass
class Evaluation:
    forecasts: pd.DataFrame
    imputation: pd.DataFrame
    residual_std: dict[str, dict[str, float]]
    summary: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        def records(frame: pd.DataFrame) -> list[dict]:
            return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
                    for row in frame.astype(object).to_dict("records")]

        return {"summary": self.summary, "forecasts": records(self.forecasts), "imputation": records(self.imputation),
                "residual_std": self.residual_std}


def _subsample(anchors: np.ndarray, limit: int | None) -> np.ndarray:
    if limit is None or anchors.size <= limit:
        return anchors
    return anchors[np.linspace(0, anchors.size - 1, limit).round().astype(np.int64)]


@torch.no_grad()
def model_forecasts(objective: Objective, batches: WindowBatches, anchors: np.ndarray,
                    input_fields: torch.Tensor | None = None, wanted_fields: torch.Tensor | None = None,
                    samples: int = 8, steps: int = 10, seed: int = 0, chunk: int = 64) -> np.ndarray:
    """``(n, L, F)`` predictions (normalised units) of hidden scalar cells; NaN for vector/inactive fields."""
    canvas = batches.canvas
    scalar = np.asarray(canvas.slots) == 1
    first_slot = torch.from_numpy(canvas.offsets[:-1]).to(batches.device)
    generator = torch.Generator(device=batches.device).manual_seed(seed)
    out = []
    objective.model.eval()
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


def evaluate_model(objective: Objective, batches: WindowBatches, anchors: np.ndarray, train_end_step: int,
                   baselines: Sequence[str] = ("persistence", "ar", "dfm"), max_anchors: int | None = 300,
                   imputation_fields: Sequence[str] | None = None, max_imputation_fields: int = 6,
                   samples: int = 8, sample_steps: int = 10, dfm_options: dict | None = None) -> Evaluation:
    """Scores of the model and ``baselines`` on ``anchors`` (subsampled evenly to ``max_anchors``)."""
    canvas = batches.canvas
    anchors = _subsample(np.asarray(anchors, dtype=np.int64), max_anchors)
    if anchors.size == 0:
        raise ValueError("no test windows to evaluate on: the canvas ends too soon after train_end. Fix: a later "
                         "canvas end, an earlier train_end, or a shorter context/horizon")
    truth, present, visible = _truth(batches, anchors)
    model_fields = objective.model_fields.cpu().numpy()
    outputs = model_fields & (np.asarray(canvas.slots) == 1) & (canvas.loss_weight > 0)
    scored = present & ~visible & outputs
    predictions = {MODEL: model_forecasts(objective, batches, anchors, samples=samples, steps=sample_steps)}
    wanted = ["persistence", *[b for b in baselines if b != "persistence"]]
    predictions.update(baseline_forecasts(canvas, anchors, batches.context, batches.horizon, train_end_step,
                                          models=wanted, **(dfm_options or {})))
    groups = [field_group(p) for p in canvas.paths]
    offsets = batches.step_offset.cpu().numpy().tolist()
    table = score_forecasts(truth, scored, predictions, groups, offsets, horizon_buckets=_horizon_bucket)
    pooled = score_forecasts(truth, scored, predictions, groups, offsets,
                             horizon_buckets=lambda o: "all" if o >= 0 else None)
    table = pd.concat([table, pooled], ignore_index=True)

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
    return Evaluation(table, imputation, residual, summary)


def evaluate_fitted(fitted: FittedModel, baselines: Sequence[str] = ("persistence", "ar", "dfm"),
                    max_anchors: int | None = 300) -> Evaluation | None:
    """``fitted`` scored on its canvas's test windows (after the training period) next to ``baselines``, with
    its training configuration's diffusion sampling; None when the canvas has no test windows."""
    trainer = fitted.trainer
    if not trainer.split.test.size:
        return None
    return evaluate_model(trainer.objective, trainer.batches, trainer.split.test, trainer.split.train_end_step,
                          baselines=baselines, max_anchors=max_anchors, samples=trainer.config.diffusion_samples,
                          sample_steps=trainer.config.diffusion_steps)


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
    rows = []
    for f in chosen:
        keep = torch.ones(len(canvas.slots), dtype=torch.bool, device=batches.device)
        keep[f] = False
        only = ~keep
        pred = model_forecasts(objective, batches, anchors, input_fields=keep, wanted_fields=only,
                               samples=samples, steps=steps)
        mask = np.zeros_like(present)
        mask[..., f] = present[..., f]
        frame = imputation_scores(truth, mask, pred, np.zeros(len(canvas.slots)))
        row = frame[frame["group"] == "all"].iloc[0].to_dict()
        row["field"] = canvas.paths[f]
        rows.append(row)
    return pd.DataFrame(rows, columns=["field", "n_cells", "mse", "mse_mean", "ratio", "skill"])


def _summary(table: pd.DataFrame, imputation: pd.DataFrame) -> dict[str, float]:
    def pick(model: str, horizon) -> pd.Series | None:
        rows = table[(table["model"] == model) & (table["group"] == "all") & (table["horizon"] == horizon)]
        return rows.iloc[0] if len(rows) else None

    out: dict[str, float] = {}
    overall = pick(MODEL, "all")
    if overall is not None:
        out.update(skill=float(overall["skill"]), mse=float(overall["mse"]), n_cells=int(overall["n_cells"]),
                   dm_stat=float(overall["dm_stat"]), dm_pvalue=float(overall["dm_pvalue"]))
    for name in table["model"].unique():
        row = pick(name, "all")
        if row is not None:  # skill on the cells both it and persistence forecast; mse on the cells it covers
            out[f"mse_{name}"] = float(row["mse"])
            out[f"skill_{name}"] = float(row["skill"])
            out[f"cells_{name}"] = int(row["n_cells"])
    if len(imputation):
        out["imputation_ratio"] = float(imputation["mse"].sum() / max(imputation["mse_mean"].sum(), 1e-12))
    return out
