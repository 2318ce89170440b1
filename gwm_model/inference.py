"""``WorldModel``: load a checkpoint, observe the world as of a date, predict fields with uncertainty.

    model = WorldModel.load("warehouse/checkpoints/basic_finance")
    model.observe(observations, as_of="2016-06-30")        # a warehouse observations frame, or a Canvas
    frame = model.predict(["financial.yield_curves.ten_year"], horizon=4)

Everything is addressed by canonical field paths. Observations are encoded exactly as the training
data was (the checkpoint's layout, transforms and normalisation); only values published by the
``as_of`` instant are visible. ``predict`` returns one row per field and step from the as-of step to
``horizon`` steps ahead: visible cells as ``observed``, the others ``predicted`` with a standard
deviation and a 90% interval, in the field's transformed units (``transform`` column). The
uncertainty is the spread of diffusion samples for a diffusion model, and for a masked model the
residual spread measured per field and horizon on the held-out test windows at training time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gwm_model.canvas.build import build_canvas
from gwm_model.canvas.canvas import Canvas
from gwm_model.canvas.layout import CanvasLayout
from gwm_model.canvas.normalise import NormStats
from gwm_model.canvas.timeaxis import TimeAxis, make_time_axis
from gwm_model.nn.model import WorldModelNet
from gwm_model.training.checkpoint import load_model
from gwm_model.training.objectives import MaskingConfig
from gwm_model.training.steps import STEP_DAYS, Objective

Z90 = 1.6448536269514722


class _Frame:
    """The minimum of a window source :class:`Objective` reads (canvas geometry and slot tensors)."""

    def __init__(self, canvas: Canvas, context: int, horizon: int, device: torch.device) -> None:
        self.canvas, self.device = canvas, device
        self.slot_field = torch.from_numpy(canvas.slot_field).to(device)
        self.slots = torch.tensor(canvas.slots, dtype=torch.float32, device=device)
        self.step_offset = torch.arange(-(context - 1), horizon + 1, device=device)


class WorldModel:
    def __init__(self, net: WorldModelNet, manifest: dict, device: str | torch.device = "cpu") -> None:
        self.net, self.manifest, self.device = net, manifest, torch.device(device)
        train = manifest["train"]
        self.objective_kind = train.get("objective", "masked")
        self.context, self.horizon = int(train["context"]), int(train["horizon"])
        described = manifest["canvas"]
        self.layout = CanvasLayout.from_dict(described["layout"])
        self.slots = tuple(described["slots"])
        self.stats = NormStats.from_dict(described["normalisation"])
        self.transforms = dict(described["transforms"])
        self.axis_template = TimeAxis.from_dict(described["time_axis"])
        self.canvas: Canvas | None = None
        self.as_of: np.datetime64 | None = None

    @classmethod
    def load(cls, checkpoint: str | Path, device: str | torch.device = "cpu") -> WorldModel:
        net, manifest = load_model(checkpoint, device=device)
        return cls(net, manifest, device)

    @property
    def fields(self) -> tuple[str, ...]:
        return self.net.fields

    # -- observing ------------------------------------------------------------------------------
    def observe(self, data, as_of=None, schema=None) -> WorldModel:
        """Take the world's state from ``data`` (an observations frame or a :class:`Canvas` built for this
        model) as known at ``as_of`` (a date or instant; default: the latest publication in the data)."""
        if isinstance(data, Canvas):
            if data.layout.layout_hash != self.layout.layout_hash:
                raise ValueError("this canvas has a different layout than the model was trained on. Fix: build it "
                                 "for the model's node, or pass observations and let observe() encode them")
            canvas = data
            published = data.available_us[data.presence]
        else:
            canvas = None
            frame = data
            published = np.asarray(frame["available_at"].to_numpy(), dtype="datetime64[us]").astype(np.int64)
        if as_of is None:
            if published.size == 0:
                raise ValueError("there are no observations to observe")
            as_of_us = np.datetime64(int(published.max()), "us")
        else:
            as_of_us = np.datetime64(as_of, "us")
        if canvas is None:
            canvas = self._encode(data, as_of_us, schema)
        self.canvas, self.as_of = canvas, as_of_us
        return self

    def _encode(self, observations, as_of: np.datetime64, schema) -> Canvas:
        from gwm_model.schema import default_world

        projection_spec = self.manifest.get("projection")
        if not projection_spec:
            raise ValueError("this checkpoint does not record its projection; pass a Canvas to observe()")
        world = schema or default_world()
        projection = world.project(projection_spec["include"], projection_spec.get("exclude", ()),
                                   projection_spec.get("entities") or None)
        if projection.paths != self.layout.paths:
            raise ValueError(f"the schema's projection for this checkpoint has different fields than the checkpoint "
                             f"(schema hash {projection.schema_hash}, checkpoint "
                             f"{self.manifest['canvas']['schema_hash']}). Fix: pass the schema it was trained with")
        step_days = math.ceil(STEP_DAYS[self.axis_template.frequency])
        end = as_of.astype("datetime64[D]") + np.timedelta64(step_days * (self.horizon + 1), "D")
        axis = make_time_axis(self.axis_template.starts[0], end, self.axis_template.frequency)
        vector_slots = {p: k for p, k in zip(self.layout.paths, self.slots, strict=True) if k > 1}
        weights = self.manifest["canvas"]["loss_weight"]
        return build_canvas(observations, projection, axis, self.stats.train_end, transforms=self.transforms,
                            vector_slots=vector_slots, loss_weights=weights, layout=self.layout, stats=self.stats,
                            schema_hash=self.manifest["canvas"]["schema_hash"])

    # -- predicting -----------------------------------------------------------------------------
    def _window(self, canvas: Canvas, anchor: int) -> tuple[dict[str, torch.Tensor], np.ndarray]:
        T = canvas.num_steps
        steps = np.arange(anchor - self.context + 1, anchor + self.horizon + 1)
        inside = (steps >= 0) & (steps < T)
        clipped = np.clip(steps, 0, T - 1)
        values = np.where(inside[:, None], canvas.values[clipped], 0.0).astype(np.float32)
        visible = inside[:, None] & (canvas.available_us[clipped] <= self.as_of.astype(np.int64))
        present = inside[:, None] & canvas.presence[clipped]
        starts = canvas.axis.starts[clipped]
        doy = ((starts - starts.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.float32) / 365.25)
        batch = {"targets": torch.from_numpy(values)[None], "visible": torch.from_numpy(visible)[None],
                 "present": torch.from_numpy(present)[None], "day_of_year": torch.from_numpy(doy)[None]}
        return {k: v.to(self.device) for k, v in batch.items()}, steps

    def predict(self, fields: Sequence[str] | str | None = None, horizon: int | None = None,
                samples: int = 32, seed: int = 0) -> pd.DataFrame:
        if self.canvas is None or self.as_of is None:
            raise RuntimeError("call observe(...) before predict(...)")
        horizon = self.horizon if horizon is None else int(horizon)
        if not 0 <= horizon <= self.horizon:
            raise ValueError(f"this model forecasts up to {self.horizon} steps ahead; asked for {horizon}")
        if fields is None:  # every scalar field the model was trained on with data (not the hubs)
            fields = [p for p in self.fields if self.slots[self.layout.paths.index(p)] == 1 and self.stats.count[p]]
        fields = [fields] if isinstance(fields, str) else list(fields)
        unknown = [p for p in fields if p not in self.fields]
        if unknown:
            raise KeyError(f"field(s) {unknown} are not predicted by this model; it knows {list(self.fields)[:10]}...")
        canvas = self.canvas
        anchor = int(canvas.axis.index(self.as_of.astype("datetime64[D]")))
        batch, steps = self._window(canvas, anchor)
        wanted_fields = torch.zeros(len(self.slots), dtype=torch.bool, device=self.device)
        wanted_fields[[self.layout.paths.index(p) for p in fields]] = True
        wanted = ~batch["visible"] & wanted_fields
        objective = Objective(self.net, _Frame(canvas, self.context, self.horizon, self.device), self.objective_kind,
                              MaskingConfig())
        generator = torch.Generator(device=self.device).manual_seed(seed)
        self.net.eval()
        mean, draws = objective.predict(batch, batch["visible"], wanted, samples=samples, generator=generator)
        residual = self.manifest.get("evaluation", {}).get("residual_std", {})
        rows = []
        for path in fields:
            f = self.layout.paths.index(path)
            slot = int(canvas.offsets[f])
            mu, sd = self.stats.mean[path], self.stats.std[path]
            for i in range(self.context - 1, self.context + horizon):
                offset = i - (self.context - 1)
                step = int(steps[i])
                row = {"field_path": path, "date": str(_step_start(canvas, step)), "horizon": offset,
                       "transform": self.transforms.get(path, "level")}
                if bool(batch["visible"][0, i, f]):
                    value = float(batch["targets"][0, i, slot]) * sd + mu
                    row.update(kind="observed", mean=value, std=0.0, q05=value, q95=value)
                elif draws is not None:
                    values = draws[:, 0, i, slot].float().cpu().numpy() * sd + mu
                    row.update(kind="predicted", mean=float(values.mean()), std=float(values.std()),
                               q05=float(np.quantile(values, 0.05)), q95=float(np.quantile(values, 0.95)))
                else:
                    value = float(mean[0, i, slot]) * sd + mu
                    spread = _nearest(residual.get(path, {}), offset)
                    std = float(spread) * sd if spread is not None else float("nan")
                    row.update(kind="predicted", mean=value, std=std, q05=value - Z90 * std, q95=value + Z90 * std)
                rows.append(row)
        return pd.DataFrame(rows, columns=["field_path", "date", "horizon", "kind", "mean", "std", "q05", "q95",
                                           "transform"])


def _nearest(per_offset: dict[str, float], offset: int) -> float | None:
    """The residual spread measured at ``offset``, else at the nearest measured offset (the anchor step
    itself is rarely hidden at test time, the step after it always is)."""
    if not per_offset:
        return None
    best = min(per_offset, key=lambda k: (abs(int(k) - offset), int(k)))
    return per_offset[best]


def _step_start(canvas: Canvas, step: int) -> np.datetime64:
    if step < canvas.num_steps:
        return canvas.axis.starts[step]
    extended = make_time_axis(canvas.axis.starts[0], canvas.axis.ends[-1] + np.timedelta64(400, "D"),
                              canvas.axis.frequency)
    return extended.starts[step]
