"""``WorldModel``: load a checkpoint, observe the world as of a date, predict fields with uncertainty.

    model = WorldModel.load("warehouse/checkpoints/basic_finance")
    model.observe("warehouse/gwm.duckdb", as_of="2016-06-30")   # or a frame, a DuckDB relation, a Canvas
    frame = model.predict(["financial.yield_curves.ten_year"], horizon=4)
    table = model.forecast(origins=model.test_origins())        # rolling origins over the test period

Everything is addressed by canonical field paths. Observations (any shape of
:mod:`gwm_model.inference.frames`) are encoded exactly as the training data was (the checkpoint's
layout, transforms and normalisation); only values published by the ``as_of`` instant are visible.

``predict`` returns one row per field and step from the as-of step to ``horizon`` steps ahead:
visible cells as ``observed``, the others ``predicted`` with a standard deviation and a 90% interval,
in the field's transformed units (``transform`` column). ``forecast`` returns the hidden cells of
horizons 1..H from one or many origins, with each field's naive forecast beside the model's
(:mod:`gwm_model.evaluation.naive`: persistence or climatology, chosen on the validation windows).
Predicted cells at and after the as-of step go through the checkpoint's do-no-harm gate
(:mod:`gwm_model.evaluation.gate`): ``naive + a * (base - naive) + b * (network - base)`` per field. The uncertainty is
the spread of diffusion samples for a diffusion model, and for a masked model the residual spread
of the gated forecast measured per field and horizon on the held-out test windows at training time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gwm_model.canvas.build import build_canvas
from gwm_model.canvas.canvas import Canvas
from gwm_model.canvas.layout import CanvasLayout
from gwm_model.canvas.normalise import NormStats
from gwm_model.canvas.observations import as_frame
from gwm_model.canvas.timeaxis import TimeAxis, make_time_axis
from gwm_model.evaluation.naive import PERSISTENCE, choose_naive
from gwm_model.inference.frames import observations_table
from gwm_model.inference.gating import Z90, apply_checkpoint_gate
from gwm_model.inference.naive_values import naive_from_origins
from gwm_model.inference.steps import forecast_fields, nearest_spread, step_start, step_starts
from gwm_model.nn.model import WorldModelNet
from gwm_model.training.autoregression import BaseForecast
from gwm_model.training.batches import eval_chunk, split_anchors
from gwm_model.training.checkpoint import load_model
from gwm_model.training.objectives import MaskingConfig
from gwm_model.training.steps import STEP_DAYS, Objective

FORECAST_COLUMNS = ["as_of", "field_path", "target_ts", "target_end", "horizon", "mean", "std", "q05", "q95",
                    "naive", "naive_method", "last_observed", "transform"]


class ForecastRequestError(ValueError):
    """A date, field or horizon the model cannot answer for; the message names the value and the valid range."""


class _Frame:
    """The minimum of a window source :class:`Objective` reads (canvas geometry and slot tensors)."""

    def __init__(self, canvas: Canvas, context: int, horizon: int, device: torch.device) -> None:
        self.canvas, self.device = canvas, device
        self.slot_field = torch.from_numpy(canvas.slot_field).to(device)
        self.slots = torch.tensor(canvas.slots, dtype=torch.float32, device=device)
        self.step_offset = torch.arange(-(context - 1), horizon + 1, device=device)


@dataclass
class WindowPrediction:
    """:meth:`WorldModel.windows`: the whole window of each of ``B`` origins (``L`` rows: the context and the
    horizon), de-normalised, for ``n`` requested fields. ``visible``: published by the origin (its value in
    ``observed``); ``mean`` .. ``q95``: the forecast, read where a cell is not visible (the gate applied at and after
    the anchor)."""

    anchors: np.ndarray  # (B,)
    steps: np.ndarray  # (B, L) canvas step of each window row
    visible: np.ndarray  # (B, L, n)
    observed: np.ndarray  # (B, L, n) the visible values (NaN elsewhere)
    mean: np.ndarray
    std: np.ndarray
    q05: np.ndarray
    q95: np.ndarray
    naive: np.ndarray  # (B, n) each field's naive forecast from the origin
    last_step: np.ndarray  # (B, n) canvas step of its last value published by the origin (-1: none)


class WorldModel:
    def __init__(self, net: WorldModelNet, manifest: dict, device: str | torch.device = "cpu") -> None:
        self.net, self.manifest, self.device = net, manifest, torch.device(device)
        train = manifest["train"]
        self.objective_kind = train.get("objective", "masked")
        self.target_space = train.get("target_space", "level")  # checkpoints from before change space: level
        self.change_scale = manifest.get("change_scale")
        self.base = BaseForecast.from_dict(manifest.get("base_forecast"))  # None: checkpoints from before the base
        self.context, self.horizon = int(train["context"]), int(train["horizon"])
        self.val_fraction = float(train.get("val_fraction", 0.15))
        described = manifest["canvas"]
        self.layout = CanvasLayout.from_dict(described["layout"])
        self.slots = tuple(described["slots"])
        self.stats = NormStats.from_dict(described["normalisation"])
        self.transforms = dict(described["transforms"])
        self.axis_template = TimeAxis.from_dict(described["time_axis"])
        self.canvas: Canvas | None = None
        self.as_of: np.datetime64 | None = None
        self._naive: dict[str, str] | None = None

    @classmethod
    def load(cls, checkpoint: str | Path, device: str | torch.device = "cpu") -> WorldModel:
        net, manifest = load_model(checkpoint, device=device)
        return cls(net, manifest, device)

    @property
    def fields(self) -> tuple[str, ...]:
        return self.net.fields

    @property
    def forecast_fields(self) -> tuple[str, ...]:
        """The scalar output fields the model was trained on with data: what it forecasts by default."""
        return forecast_fields(self.manifest)

    # -- observing ------------------------------------------------------------------------------
    def observe(self, data, as_of=None, schema=None) -> WorldModel:
        """Take the world's state from ``data`` as known at ``as_of`` (a date or instant; default: the latest
        publication among the model's fields). ``data``: a :class:`Canvas` built for this model, or observations
        in any shape :func:`~gwm_model.inference.frames.observations_table` reads (a pyarrow Table or
        RecordBatchReader, a pandas or polars DataFrame, a DuckDB relation, a warehouse file path)."""
        if isinstance(data, Canvas):
            if data.layout.layout_hash != self.layout.layout_hash:
                raise ValueError("this canvas has a different layout than the model was trained on. Fix: build it "
                                 "for the model's node, or pass observations and let observe() encode them")
            canvas, frame = data, None
            published = data.available_us[data.presence]
        else:
            canvas = None
            frame = as_frame(observations_table(data))
            mine = frame["field_path"].is_in(list(self.layout.paths)).to_numpy()
            published = frame["available_at"].to_numpy().astype("datetime64[us]").view(np.int64)[mine]
        if published.size == 0:
            raise ForecastRequestError("there are no observations of this model's fields to observe. Fix: pass the "
                                       "warehouse's observations (make run) or a frame that holds some of "
                                       f"{list(self.forecast_fields)[:5]}")
        newest = np.datetime64(int(published.max()), "us")
        # the model's canvas starts at its axis; before that (or before any publication) it has nothing to read
        first = max(np.datetime64(int(published.min()), "us"), self.axis_template.starts[0].astype("datetime64[us]"))
        # ... and after the newest publication by more than the data's usual silence (one canvas step, or the longest
        # gap between two publications in its history) it would extrapolate from data that has stopped
        step_us = int(math.ceil(STEP_DAYS[self.axis_template.frequency]) * 86_400_000_000)
        times = np.unique(published)
        silence = max(step_us, int(np.diff(times).max()) if times.size > 1 else 0)
        last = np.datetime64(int(published.max()) + silence, "us")
        as_of_us = newest if as_of is None else np.datetime64(as_of, "us")
        if not first <= as_of_us <= last:
            raise ForecastRequestError(
                f"as_of {as_of} is outside this model's data: its canvas starts {self.axis_template.starts[0]} and "
                f"its fields were published up to {str(newest)[:19]}. Fix: an as_of in {str(first)[:10]} .. "
                f"{str(last)[:10]} (or none, for the newest)")
        if canvas is None:
            canvas = self._encode(frame, as_of_us, schema)
        self.canvas, self.as_of, self._naive = canvas, as_of_us, None
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

    def _observed(self) -> tuple[Canvas, np.datetime64]:
        if self.canvas is None or self.as_of is None:
            raise RuntimeError("call observe(...) before predict(...) or forecast(...)")
        return self.canvas, self.as_of

    # -- origins and the naive forecast ---------------------------------------------------------
    def test_origins(self, limit: int | None = None) -> np.ndarray:
        """As-of instants (``datetime64[us]``) of the test-period forecast origins before the observed as_of:
        the last instant of every canvas step after the training period whose whole horizon lies on the canvas,
        evenly thinned to ``limit`` (none when the canvas is too short for a test window)."""
        canvas, as_of = self._observed()
        try:
            split = split_anchors(canvas, self.context, self.horizon, 0.0, self.stats.train_end)
        except ValueError:
            return np.zeros(0, dtype="datetime64[us]")
        cutoffs = canvas.axis.cutoffs_us[split.test] - 1
        origins = split.test[cutoffs < as_of.astype(np.int64)]
        if limit is not None and origins.size > limit:
            origins = origins[np.linspace(0, origins.size - 1, limit).round().astype(np.int64)]
        return (canvas.axis.cutoffs_us[origins] - 1).astype("datetime64[us]")

    def naive_methods(self) -> dict[str, str]:
        """Field path -> its naive forecaster (``persistence`` or ``climatology``), chosen on the validation
        windows of the checkpoint's training period (:func:`~gwm_model.evaluation.naive.choose_naive`)."""
        canvas, _ = self._observed()
        if self._naive is None:
            try:
                split = split_anchors(canvas, self.context, self.horizon, self.val_fraction, self.stats.train_end)
                anchors, end_step = split.val, split.train_end_step
            except ValueError:  # too short a training period for validation windows: persistence everywhere
                anchors, end_step = np.zeros(0, np.int64), 0
            self._naive = choose_naive(canvas, anchors, self.context, self.horizon, end_step)
        return self._naive

    def history(self, fields: Sequence[str] | str | None = None, last: int | None = None) -> pd.DataFrame:
        """What the model saw: ``field_path, date, value`` of each cell published by the as_of, up to the as-of
        step, the ``last`` most recent per field (all by default), in transformed units."""
        canvas, as_of = self._observed()
        fields = self._fields(fields)
        anchor = int(canvas.axis.step_of([as_of.astype("datetime64[D]")])[0])
        rows = []
        for path in fields:
            f = self.layout.paths.index(path)
            known = canvas.presence[:anchor + 1, f] & (canvas.available_us[:anchor + 1, f] <= as_of.astype(np.int64))
            at = np.flatnonzero(known)
            at = at if last is None else at[max(0, at.size - int(last)):]
            values = canvas.values[at, canvas.offsets[f]].astype(np.float64) * self.stats.std[path] + \
                self.stats.mean[path]
            rows.append(pd.DataFrame({"field_path": path, "date": canvas.axis.starts[at], "value": values}))
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["field_path", "date", "value"])

    # -- predicting -----------------------------------------------------------------------------
    def _fields(self, fields: Sequence[str] | str | None) -> list[str]:
        if fields is None:
            return list(self.forecast_fields)
        fields = [fields] if isinstance(fields, str) else list(fields)
        unknown = [p for p in fields if p not in self.fields]
        if unknown:
            raise ForecastRequestError(f"field(s) {unknown} are not predicted by this model; it forecasts "
                                       f"{list(self.forecast_fields)[:10]}...")
        return fields

    def _horizon(self, horizon: int | None) -> int:
        horizon = self.horizon if horizon is None else int(horizon)
        if not 0 <= horizon <= self.horizon:
            raise ForecastRequestError(f"this model forecasts up to {self.horizon} steps ahead; asked for {horizon}")
        return horizon

    def _window(self, canvas: Canvas, anchor: int, as_of_us: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        T = canvas.num_steps
        steps = np.arange(anchor - self.context + 1, anchor + self.horizon + 1)
        inside = (steps >= 0) & (steps < T)
        clipped = np.clip(steps, 0, T - 1)
        values = np.where(inside[:, None], canvas.values[clipped], 0.0).astype(np.float32)
        visible = inside[:, None] & (canvas.available_us[clipped] <= as_of_us)
        present = inside[:, None] & canvas.presence[clipped]
        starts = canvas.axis.starts[clipped]
        doy = ((starts - starts.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.float32) / 365.25)
        return {"targets": values, "visible": visible, "present": present, "day_of_year": doy}, steps

    @torch.no_grad()
    def windows(self, origins: np.ndarray, fields: list[str], samples: int = 32, seed: int = 0,
                chunk: int | None = None) -> WindowPrediction:
        """The model's windows at ``origins`` (instants; each window's anchor is the canvas step holding it, and it
        sees what was published by then) for ``fields``: what :meth:`predict` and :meth:`forecast` read their rows
        from, and what the truncation test compares cell by cell, late releases inside the context included."""
        canvas, _ = self._observed()
        origins = np.asarray(origins, dtype="datetime64[us]").reshape(-1)
        origin_days = origins.astype("datetime64[D]")
        anchors = canvas.axis.step_of(origin_days)
        if (anchors < 0).any():
            raise ForecastRequestError(f"origin(s) {origins[anchors < 0][:3]} lie outside the observed canvas "
                                       f"({canvas.axis.starts[0]} .. {canvas.axis.ends[-1]})")
        index = [self.layout.paths.index(p) for p in fields]
        slot = canvas.offsets[index]
        mu = np.array([self.stats.mean[p] for p in fields])
        sd = np.array([self.stats.std[p] for p in fields])
        wanted_fields = torch.zeros(len(self.slots), dtype=torch.bool, device=self.device)
        wanted_fields[index] = True
        objective = Objective(self.net, _Frame(canvas, self.context, self.horizon, self.device), self.objective_kind,
                              MaskingConfig(), self.target_space, self.change_scale)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        residual = (self.manifest.get("evaluation") or {}).get("residual_std", {})
        offsets = np.arange(-(self.context - 1), self.horizon + 1)
        spread = np.array([[nearest_spread(residual.get(p, {}), int(o)) for p in fields] for o in offsets], dtype=float)
        self.net.eval()
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("steps", "visible", "observed", "mean", "std", "q05",
                                                               "q95", "base")}
        origin_us = origins.astype("datetime64[us]").astype(np.int64)
        chunk = chunk or eval_chunk(self.context + self.horizon, self.net.plan.num_tokens, self.device)
        for lo in range(0, anchors.size, chunk):
            windows = [self._window(canvas, int(a), int(u)) for a, u in
                       zip(anchors[lo:lo + chunk], origin_us[lo:lo + chunk], strict=True)]
            batch = {k: torch.from_numpy(np.stack([w[0][k] for w in windows])).to(self.device)
                     for k in windows[0][0]}
            base = None if self.base is None else self.base.forecast_compact(
                canvas, anchors[lo:lo + chunk], origin_us[lo:lo + chunk], offsets, late=True)  # what each origin had
            if base is not None:
                slots = np.full((*base[1].shape[:2], int(canvas.offsets[-1])), np.nan, dtype=np.float32)
                slots[..., canvas.offsets[base[0]]] = base[1]
                parts["base"].append(slots[..., slot].astype(np.float64) * sd + mu)  # late releases' too, for the gate
                slots[:, :self.context - 1] = np.nan  # the network reads the base from the anchor on, as in training
                batch["base"] = torch.from_numpy(slots).to(self.device)
            wanted = ~batch["visible"] & wanted_fields
            mean, draws = objective.predict(batch, batch["visible"], wanted, samples=samples, generator=generator)
            targets = batch["targets"][..., slot].cpu().numpy().astype(np.float64) * sd + mu
            visible = batch["visible"][..., index].cpu().numpy()
            parts["steps"].append(np.stack([w[1] for w in windows]))
            parts["visible"].append(visible)
            parts["observed"].append(np.where(visible, targets, np.nan))
            if draws is not None:
                values = draws[..., slot].float().cpu().numpy().astype(np.float64) * sd + mu  # (n, B, L, k)
                parts["mean"].append(values.mean(axis=0))
                parts["std"].append(values.std(axis=0))
                parts["q05"].append(np.quantile(values, 0.05, axis=0))
                parts["q95"].append(np.quantile(values, 0.95, axis=0))
            else:
                m = mean[..., slot].float().cpu().numpy().astype(np.float64) * sd + mu
                std = np.broadcast_to(spread * sd, m.shape)
                parts["mean"].append(m)
                parts["std"].append(std)
                parts["q05"].append(m - Z90 * std)
                parts["q95"].append(m + Z90 * std)
        base = np.concatenate(parts.pop("base")) if parts["base"] else None
        joined = {k: np.concatenate(v) for k, v in parts.items()}
        naive, last_step = naive_from_origins(canvas, self.stats, self.naive_methods(), fields, anchors, origin_us)
        apply_checkpoint_gate(joined, base, naive, fields, self.manifest.get("evaluation") or {}, self.context,
                              diffusion=self.objective_kind != "masked")
        return WindowPrediction(anchors=anchors, naive=naive, last_step=last_step, **joined)

    def predict(self, fields: Sequence[str] | str | None = None, horizon: int | None = None,
                samples: int = 32, seed: int = 0) -> pd.DataFrame:
        """One row per field and step from the observed as-of step to ``horizon`` steps ahead (see the module
        docstring)."""
        canvas, as_of = self._observed()
        horizon, fields = self._horizon(horizon), self._fields(fields)
        out = self.windows(np.array([as_of]), fields, samples, seed)
        rows = []
        for k, path in enumerate(fields):
            for i in range(self.context - 1, self.context + horizon):
                step = int(out.steps[0, i])
                row = {"field_path": path, "date": str(step_start(canvas, step)), "horizon": i - (self.context - 1),
                       "transform": self.transforms.get(path, "level")}
                if out.visible[0, i, k]:
                    value = float(out.observed[0, i, k])
                    row.update(kind="observed", mean=value, std=0.0, q05=value, q95=value)
                else:
                    row.update(kind="predicted", mean=float(out.mean[0, i, k]), std=float(out.std[0, i, k]),
                               q05=float(out.q05[0, i, k]), q95=float(out.q95[0, i, k]))
                rows.append(row)
        return pd.DataFrame(rows, columns=["field_path", "date", "horizon", "kind", "mean", "std", "q05", "q95",
                                           "transform"])

    def forecast(self, fields: Sequence[str] | str | None = None, horizon: int | None = None,
                 origins: Sequence | np.ndarray | None = None, samples: int = 32, seed: int = 0) -> pd.DataFrame:
        """The hidden cells of horizons 1..``horizon`` from each origin (default: the observed as_of), one row
        per origin, field and horizon: the model's mean, std and 90% interval, and the field's naive forecast
        (``naive``, by ``naive_method``) from the same information. Columns: :data:`FORECAST_COLUMNS`; dates are
        canvas steps (``target_ts`` its first day, ``target_end`` the day after its last)."""
        canvas, as_of = self._observed()
        horizon, fields = self._horizon(horizon), self._fields(fields)
        origins = np.array([as_of]) if origins is None else np.asarray(origins, dtype="datetime64[us]").reshape(-1)
        late = origins[origins > as_of]
        if late.size:
            raise ForecastRequestError(f"origin {late[0]} is after the observed as_of {as_of}. Fix: observe(..., "
                                       "as_of=<the latest origin>) first")
        if origins.size == 0 or not fields:
            return pd.DataFrame(columns=FORECAST_COLUMNS)
        out = self.windows(origins, fields, samples, seed)
        methods, naive, last_step = self.naive_methods(), out.naive, out.last_step
        ahead = np.arange(self.context, self.context + horizon)  # window rows of horizons 1..horizon
        b, h, k = np.nonzero(~out.visible[:, ahead, :])
        rows = ahead[h]
        steps = out.steps[b, rows]
        starts = step_starts(canvas, steps)
        ends = step_starts(canvas, steps + 1)
        frame = pd.DataFrame({
            "as_of": origins[b].astype("datetime64[us]"), "field_path": np.asarray(fields, dtype=object)[k],
            "target_ts": starts, "target_end": ends, "horizon": h + 1,
            "mean": out.mean[b, rows, k], "std": out.std[b, rows, k], "q05": out.q05[b, rows, k],
            "q95": out.q95[b, rows, k], "naive": naive[b, k],
            "last_observed": np.where(last_step[b, k] >= 0, canvas.axis.starts[np.maximum(last_step[b, k], 0)],
                                      np.datetime64("NaT")),
            "naive_method": np.asarray([methods.get(p, PERSISTENCE) for p in fields], dtype=object)[k],
            "transform": np.asarray([self.transforms.get(p, "level") for p in fields], dtype=object)[k]})
        return frame.sort_values(["as_of", "field_path", "horizon"], ignore_index=True)[FORECAST_COLUMNS]
