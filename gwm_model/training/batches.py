"""Windows of a canvas as batches of tensors, cut in one vectorised gather, and the time-ordered split.

:class:`WindowBatches` returns exactly what :class:`gwm_model.canvas.windows.CanvasWindows` returns
per sample (same visibility rule: a cell is visible iff published before the anchor step's cutoff),
stacked for a list of anchors at once, plus the time features the model reads, and with a
:class:`~gwm_model.training.autoregression.BaseForecast` each window's base values (where the model's
prediction starts at and after the anchor), computed once for every anchor of the canvas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gwm_model.canvas.canvas import Canvas
from gwm_model.training.autoregression import BaseForecast

#: Tokens (window steps x token positions) one forward pass without gradients takes at once on a CPU. The space
#: attention's scores grow with the square of the positions, and on two cores a pass of 64 windows of
#: ``full_integration`` (16 x 307 tokens) took 11.0 s against 5.2 s in passes of 4: past about this many tokens the
#: working set leaves the cache. A GPU takes larger passes.
EVAL_TOKENS = {"cpu": 16_384, "cuda": 1_048_576}


def eval_chunk(window: int, tokens: int, device: torch.device | str = "cpu") -> int:
    """Windows per forward pass when scoring without gradients (see :data:`EVAL_TOKENS`), at least one."""
    budget = EVAL_TOKENS.get(torch.device(device).type, EVAL_TOKENS["cpu"])
    return max(1, budget // max(1, window * tokens))


@dataclass(frozen=True)
class WindowSplit:
    """Anchor step indices for training, validation (early stopping) and test (evaluation)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    train_end_step: int

    def summary(self) -> dict[str, int]:
        return {"train_windows": int(self.train.size), "val_windows": int(self.val.size),
                "test_windows": int(self.test.size), "train_end_step": self.train_end_step}


def split_anchors(canvas: Canvas, context: int, horizon: int, val_fraction: float,
                  train_end: str | None = None) -> WindowSplit:
    """Time-ordered split at the canvas's normalisation ``train_end`` (or the given date).

    Training windows end by ``train_end``; validation takes the last ``val_fraction`` of them, then
    drops training anchors whose window reaches into the validation targets. Test anchors lie after
    ``train_end``: their targets are data the statistics and the weights never saw.
    """
    window = context + horizon
    T = canvas.num_steps
    end_day = np.datetime64(train_end or canvas.stats.train_end, "D")
    end_step = int(np.searchsorted(canvas.axis.starts, end_day, side="right") - 1)
    if end_step < 0:
        raise ValueError(f"train_end {end_day} is before the canvas starts ({canvas.axis.starts[0]})")
    first, last = context - 1, T - horizon - 1
    train = np.arange(first, min(end_step - horizon, last) + 1)
    if train.size < 2:
        raise ValueError(f"the canvas has {train.size} training window(s) of {context}+{horizon} steps before "
                         f"train_end {end_day}. Fix: a shorter context/horizon, an earlier canvas start or a later "
                         "train_end")
    n_val = int(round(train.size * val_fraction))
    val = train[train.size - n_val:] if n_val else train[:0]
    if n_val:
        train = train[train <= val[0] - window]
    test = np.arange(max(end_step + 1, first), last + 1)
    return WindowSplit(train=train, val=val, test=test, train_end_step=end_step)


class WindowBatches:
    """Batches of windows of ``context + horizon`` steps (see the module docstring)."""

    def __init__(self, canvas: Canvas, context: int, horizon: int, device: torch.device | str = "cpu",
                 base: BaseForecast | None = None) -> None:
        self.canvas, self.context, self.horizon, self.base = canvas, context, horizon, base
        self.device = torch.device(device)
        self.values = torch.from_numpy(np.ascontiguousarray(canvas.values, dtype=np.float32)).to(self.device)
        self.presence = torch.from_numpy(np.ascontiguousarray(canvas.presence)).to(self.device)
        self.available = torch.from_numpy(np.ascontiguousarray(canvas.available_us)).to(self.device)
        self.cutoffs = torch.from_numpy(canvas.axis.cutoffs_us).to(self.device)
        self.loss_weight = torch.from_numpy(np.ascontiguousarray(canvas.loss_weight, np.float32)).to(self.device)
        self.slot_field = torch.from_numpy(canvas.slot_field).to(self.device)
        self.slots = torch.tensor(canvas.slots, dtype=torch.float32, device=self.device)
        days = canvas.axis.starts.astype("datetime64[D]")
        year_start = days.astype("datetime64[Y]").astype("datetime64[D]")
        doy = (days - year_start).astype(np.float32) / 365.25
        self.day_of_year = torch.from_numpy(doy).to(self.device)
        self.step_offset = torch.arange(-(context - 1), horizon + 1, device=self.device)
        self._base_table = self._base_slots = None
        first, last = context - 1, canvas.num_steps - horizon - 1
        if base is not None and base.kind != "persistence" and last >= first:
            anchors = np.arange(first, last + 1)
            fields, table = base.forecast_compact(canvas, anchors, canvas.axis.cutoffs_us[anchors] - 1,  # available <
                                                  self.step_offset.cpu().numpy())                    # the cutoff
            self._base_table = torch.from_numpy(table).to(self.device)
            self._base_slots = torch.from_numpy(canvas.offsets[fields]).to(self.device)

    @property
    def window(self) -> int:
        return self.context + self.horizon

    def __call__(self, anchors: np.ndarray | torch.Tensor, input_fields: torch.Tensor | None = None
                 ) -> dict[str, torch.Tensor]:
        """``inputs``/``targets`` ``(B, L, S)``, ``visible``/``present`` ``(B, L, F)``, ``loss_weight``
        ``(B, F)``, ``day_of_year`` ``(B, L)``, ``anchor`` ``(B,)``; with a base forecast also ``base`` ``(B, L, S)``
        (NaN where a cell has none). ``input_fields`` ``(F,)`` bool
        restricts which fields may be visible at all (held-out-field evaluation)."""
        anchor = torch.as_tensor(np.asarray(anchors), dtype=torch.long, device=self.device)
        steps = anchor[:, None] + self.step_offset[None, :]
        targets = self.values[steps]
        visible = self.available[steps] < self.cutoffs[anchor][:, None, None]
        if input_fields is not None:
            visible &= input_fields.to(self.device)
        batch = {"inputs": targets * visible[..., self.slot_field], "targets": targets, "visible": visible,
                 "present": self.presence[steps], "loss_weight": self.loss_weight.expand(anchor.numel(), -1),
                 "day_of_year": self.day_of_year[steps], "anchor": anchor}
        if self._base_table is not None:
            base = torch.full_like(targets, float("nan"))
            base[..., self._base_slots] = self._base_table[anchor - (self.context - 1)]
            if input_fields is not None:  # a field the model may not see has no base from its own history either
                base = torch.where(input_fields.to(self.device)[self.slot_field], base, float("nan"))
            batch["base"] = base
        return batch


def base_fit_end(split: WindowSplit) -> int:
    """The last step the model's base forecast is fitted on: data visible at the first validation anchor (the
    end of training without validation windows), so the validation windows judge it out of sample."""
    return int(min(split.train_end_step, split.val[0])) if split.val.size else int(split.train_end_step)


def serving_batches(batches: WindowBatches, split: WindowSplit) -> WindowBatches:
    """``batches`` with the base forecast refitted on every training step (up to ``train_end``): what the test windows
    and the checkpoint use once validation has judged the base fitted before it (the evaluation's AR baseline is
    fitted on the same steps). Without a base, ``batches`` itself."""
    base = batches.base
    if base is None or base.kind == "persistence" or base.fit_end_step == split.train_end_step:
        return batches
    refit = BaseForecast.fit(batches.canvas, split.train_end_step, base.kind, base.order)
    return WindowBatches(batches.canvas, batches.context, batches.horizon, batches.device, refit)


def training_batches(canvas: Canvas, config, device: torch.device | str = "cpu",
                     split: WindowSplit | None = None) -> tuple[WindowBatches, WindowSplit]:
    """``config``'s (a :class:`~gwm_model.training.config.TrainConfig`) windows of ``canvas`` and their split, with the
    base forecast it asks for fitted on the training steps."""
    split = split or split_anchors(canvas, config.context, config.horizon, config.val_fraction)
    base = BaseForecast.fit(canvas, base_fit_end(split), config.base_forecast, config.base_order)
    return WindowBatches(canvas, config.context, config.horizon, device, base), split
