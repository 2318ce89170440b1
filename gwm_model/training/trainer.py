"""The training loop: AdamW with warm-up and decay, gradient clipping, early stopping on a time-ordered
validation split, best-weights restore, curriculum window ordering, and loggers.

The same code runs on CPU (float32) and CUDA (bf16 autocast). Each step's wall time is split into
data (cutting windows), forward and backward+update, so throughput numbers say where time goes.

Under ``torchrun`` (a process group initialised, see :mod:`gwm_model.training.distributed`) the model is
wrapped in ``DistributedDataParallel``: ``batch_size`` stays the global batch, each rank trains on its slice
of it, losses and validation are reduced over ranks so every rank logs (rank 0 only) and decides (all
ranks alike) on global numbers. Without a process group the loop is the plain single-process one.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gwm_model.canvas.canvas import Canvas
from gwm_model.training import distributed
from gwm_model.training.batches import WindowBatches, WindowSplit, eval_chunk, serving_batches, training_batches
from gwm_model.training.checkpoint import FROZEN_PREFIX
from gwm_model.training.config import TrainConfig
from gwm_model.training.steps import Objective


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return distributed.device(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"training asks for device '{name}' but torch sees no CUDA GPU here. Fix: use a CPU "
                         "profile (GWM_PROFILE=cpu) or device: auto")
    return distributed.device(device)


def seed_everything(seed: int) -> None:
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lr_factor(step: int, total: int, config: TrainConfig) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based) of ``total``."""
    if config.warmup_steps and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.decay == "constant" or total <= config.warmup_steps:
        return 1.0
    progress = min(1.0, (step - config.warmup_steps) / max(1, total - config.warmup_steps))
    floor = config.min_lr_ratio
    if config.decay == "linear":
        return floor + (1 - floor) * (1 - progress)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass
class TrainHistory:
    """Per-epoch metrics, a thinned per-step loss trace and how training ended."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    steps: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_step: int = -1
    best_val_loss: float = math.inf
    validations: list[dict[str, float]] = field(default_factory=list)
    stopped: str = ""
    seconds: float = 0.0
    timing: dict[str, float] = field(default_factory=dict)
    split: dict[str, int] = field(default_factory=dict)

    @property
    def train_loss(self) -> list[float]:
        return [e["train_loss"] for e in self.epochs]

    @property
    def val_loss(self) -> list[float]:
        return [e["val_loss"] for e in self.epochs if "val_loss" in e]

    def to_dict(self) -> dict[str, object]:
        return {"epochs": self.epochs, "steps": self.steps, "best_epoch": self.best_epoch, "best_step": self.best_step,
                "best_val_loss": None if math.isinf(self.best_val_loss) else self.best_val_loss,
                "validations": self.validations,
                "stopped": self.stopped, "seconds": self.seconds, "timing": self.timing, "split": self.split}


def _difficulty(batches: WindowBatches, anchors: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Per window hardness for easy-to-hard ordering (see :func:`difficulty_from_variability`), in chunks."""
    from gwm_model.training.ordering import difficulty_from_variability

    out = []
    with torch.no_grad():
        for i in range(0, anchors.size, chunk):
            b = batches(anchors[i:i + chunk])
            out.append(difficulty_from_variability(b["targets"].cpu().numpy(),
                                                   b["present"][..., batches.slot_field].cpu().numpy()))
    return np.concatenate(out) if out else np.zeros(0)


class Trainer:
    """Train ``model`` on windows of ``canvas`` (see the module docstring).

    ``loggers``: objects with ``start/log_step/log_epoch/finish`` (see
    :mod:`gwm_model.training.loggers`); default: built from ``config.loggers`` into ``log_dir``. In a DDP run
    only rank 0 keeps its loggers; ``self.model`` is always the bare model, ``self.ddp`` its DDP wrapper.
    """

    def __init__(self, model: torch.nn.Module, canvas: Canvas, config: TrainConfig,
                 loggers: Sequence | None = None, log_dir: str | Path | None = None,
                 split: WindowSplit | None = None) -> None:
        self.config, self.canvas = config, canvas
        self.device = resolve_device(config.device)
        self.model = model.to(self.device)
        self.batches, self.split = training_batches(canvas, config, self.device, split)
        self.objective = Objective(self.model, self.batches, config.objective, config.masking, config.target_space)
        self._serving: WindowBatches | None = None
        self.ddp: torch.nn.Module | None = None
        self.train_objective = self.objective  # what fit's steps run: through the DDP wrapper in a DDP run
        if distributed.is_active():
            self.ddp = distributed.wrap(self.model, self.device)
            self.train_objective = copy.copy(self.objective)
            self.train_objective.model = self.ddp
            if not distributed.is_main():
                loggers = []
        if loggers is None:
            from gwm_model.training.loggers import make_loggers

            loggers = make_loggers(list(config.loggers), Path(log_dir or "."))
        self.loggers = list(loggers)
        use_bf16 = config.precision == "bf16" or (config.precision == "auto" and self.device.type == "cuda")
        self.autocast_dtype = torch.bfloat16 if use_bf16 else None

    @property
    def serving_batches(self) -> WindowBatches:
        """The windows with the base forecast refitted up to ``train_end`` (:func:`serving_batches`): for the test
        windows and the checkpoint. ``self.batches`` (base fitted before validation) trains and validates."""
        if self._serving is None:
            self._serving = serving_batches(self.batches, self.split)
        return self._serving

    @property
    def base_record(self) -> dict[str, object] | None:
        """The serving base forecast as a checkpoint records it (``manifest["base_forecast"]``); None without one."""
        base = self.serving_batches.base
        return base.to_dict() if base is not None else None

    def _autocast(self):
        if self.autocast_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    @torch.no_grad()
    def _loss_sums(self, anchors: np.ndarray, seed: int) -> tuple[float, int]:
        """(sum of batch losses x scored cells, scored cells) on ``anchors``, measured as ``config.select_on`` says:
        the forecasting task (no masking draw) or the training objective with a fixed masking draw."""
        was_training = self.model.training
        self.model.eval()
        generator = torch.Generator(device=self.device).manual_seed(seed)
        extra_hiding = self.config.select_on == "masked"
        total, weight = 0.0, 0
        chunk = eval_chunk(self.batches.window, self.model.plan.num_tokens, self.device)
        for i in range(0, anchors.size, chunk):
            batch = self.batches(anchors[i:i + chunk])
            with self._autocast():
                loss, _, n = self.objective.loss(batch, generator, extra_hiding=extra_hiding)
            total += float(loss) * n
            weight += n
        self.model.train(was_training)
        return total, weight

    def evaluate_loss(self, anchors: np.ndarray, seed: int = 1234) -> float:
        """The validation measure (``config.select_on``) on ``anchors``, comparable across steps; this process only."""
        if anchors.size == 0:
            return math.nan
        total, weight = self._loss_sums(anchors, seed)
        return total / weight if weight else math.nan

    def validation_loss(self, anchors: np.ndarray, seed: int = 1234) -> float:
        """:meth:`evaluate_loss`; in a DDP run each rank scores its shard and the sums are reduced, so every rank
        gets the same number (and takes the same early-stopping decision). Every rank must call it."""
        if self.ddp is None:
            return self.evaluate_loss(anchors, seed)
        rank = distributed.rank()
        part = distributed.shard(anchors.size, rank, distributed.world_size())
        total, weight = (self._loss_sums(anchors[part.positions], seed + rank * distributed.RANK_SEED_STRIDE)
                         if part.owned else (0.0, 0))
        sums = distributed.all_reduce_sum(torch.tensor([total, weight], dtype=torch.float64, device=self.device))
        return float(sums[0] / sums[1]) if float(sums[1]) else math.nan

    def _order(self):
        from gwm_model.training.ordering import make_order

        n = self.split.train.size
        if self.config.window_order == "easy_to_hard":
            return make_order("easy_to_hard", n, difficulty=_difficulty(self.batches, self.split.train))
        return make_order(self.config.window_order, n)

    def _global_step_loss(self, loss: torch.Tensor, per_window: torch.Tensor, weight: torch.Tensor,
                          part: distributed.Shard, size: int) -> tuple[torch.Tensor, float, np.ndarray]:
        """This rank's loss scaled so DDP's gradient mean is the gradient of the global batch's loss (each rank
        weighted by its loss's denominator ``weight``); the global batch's loss and per-window losses, from one
        all-reduce."""
        weight = weight.detach().double() if part.owned else torch.zeros((), dtype=torch.float64, device=self.device)
        sums = torch.zeros(2 + size, dtype=torch.float64, device=self.device)
        sums[0] = loss.detach().double() * weight
        sums[1] = weight
        if part.owned:
            sums[2 + torch.as_tensor(part.positions, device=self.device)] = per_window.detach().double()
        distributed.all_reduce_sum(sums)
        total = float(sums[1])
        scale = (weight * distributed.world_size() / total).float() if total > 0 else 0.0
        return loss * scale, float(sums[0]) / total if total > 0 else 0.0, sums[2:].cpu().numpy()

    def fit(self) -> TrainHistory:
        config, split = self.config, self.split
        seed_everything(config.seed)
        rng = np.random.default_rng(config.seed)  # the same on every rank: one global window order
        ddp, rank, world = self.ddp is not None, distributed.rank(), distributed.world_size()
        generator = torch.Generator(device=self.device).manual_seed(config.seed + rank * distributed.RANK_SEED_STRIDE)
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        start_weights = [p.detach().clone() for p in params] if config.start_decay > 0 else None
        per_epoch = config.windows_per_epoch or split.train.size
        batches_per_epoch = max(1, math.ceil(min(per_epoch, split.train.size) / config.batch_size))
        total = config.steps if config.steps is not None else config.epochs * batches_per_epoch
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, config))
        order = self._order()
        history = TrainHistory(split=split.summary())
        run = {"train": config.to_dict(), "parameters": sum(p.numel() for p in params), **split.summary()}
        if ddp:
            run["world_size"] = world
        for logger in self.loggers:
            logger.start(run, total)
        selection = _Selection(self, history)
        step, started = 0, time.perf_counter()
        timing = {"data": 0.0, "forward": 0.0, "backward": 0.0}
        windows_seen, tokens_per_window = 0, self.batches.window * self.model.plan.num_tokens
        if total > 0:
            selection.validate(0, -1)  # the starting weights are a candidate too
        self.model.train()
        for epoch in range(config.epochs if config.steps is None else 10**9):
            indices = order.epoch_indices(epoch, rng)[:per_epoch]
            epoch_loss, epoch_n = 0.0, 0
            for start in range(0, indices.size, config.batch_size):
                if step >= total:
                    break
                chosen = indices[start:start + config.batch_size]
                t0 = time.perf_counter()
                part = distributed.shard(chosen.size, rank, world) if ddp else None
                batch = self.batches(split.train[chosen[part.positions] if ddp else chosen])
                self._sync()
                t1 = time.perf_counter()
                with self._autocast():
                    if ddp:
                        loss, per_window, weight = self.train_objective.weighted_loss(batch, generator)
                    else:
                        loss, per_window, _ = self.train_objective.loss(batch, generator)
                if ddp:
                    loss, value, per_window = self._global_step_loss(loss, per_window, weight, part, chosen.size)
                self._sync()
                t2 = time.perf_counter()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, config.grad_clip))
                optimizer.step()
                if start_weights is not None:
                    _pull_toward(params, start_weights, scheduler.get_last_lr()[0] * config.start_decay)
                scheduler.step()
                self._sync()
                t3 = time.perf_counter()
                timing["data"] += t1 - t0
                timing["forward"] += t2 - t1
                timing["backward"] += t3 - t2
                order.update(chosen, per_window if ddp else per_window.float().cpu().numpy())
                if not ddp:
                    value = float(loss.detach())
                epoch_loss += value * chosen.size
                epoch_n += chosen.size
                windows_seen += chosen.size
                step += 1
                metrics = {"loss": value, "lr": scheduler.get_last_lr()[0], "grad_norm": grad_norm,
                           "windows_per_s": chosen.size / max(t3 - t0, 1e-9)}
                if step == 1 or step % max(1, total // 200) == 0 or step == total:
                    history.steps.append({"step": step, **metrics})
                for logger in self.loggers:
                    logger.log_step(step, metrics)
                if config.eval_steps and (step % config.eval_steps == 0 or step >= total):
                    selection.validate(step, epoch)
                    if selection.patience_spent(epoch):
                        break
            record = {"epoch": epoch, "step": step, "train_loss": epoch_loss / max(epoch_n, 1),
                      "lr": scheduler.get_last_lr()[0], "seconds": time.perf_counter() - started}
            if not config.eval_steps and (epoch % config.eval_every == 0 or step >= total):
                selection.validate(step, epoch)
            if history.validations and history.validations[-1]["epoch"] == epoch:
                record["val_loss"] = history.validations[-1]["val_loss"]
            history.epochs.append(record)
            for logger in self.loggers:
                logger.log_epoch(epoch, {k: v for k, v in record.items() if k not in ("epoch", "step")})
            if step >= total:
                history.stopped = f"reached {total} steps"
                break
            if selection.patience_spent(epoch):
                history.stopped = (f"early stop: no validation improvement above {config.min_delta:.0e} "
                                   f"for {selection.stale} evaluations")
                break
        else:
            history.stopped = f"reached {config.epochs} epochs"
        selection.restore()
        history.seconds = time.perf_counter() - started
        busy = sum(timing.values())
        history.timing = {**{f"{k}_s": v for k, v in timing.items()}, "steps": step, "windows": windows_seen,
                          "windows_per_s": windows_seen / max(busy, 1e-9),
                          "tokens_per_s": windows_seen * tokens_per_window / max(busy, 1e-9),
                          "tokens_per_window": tokens_per_window}
        summary = {"best_epoch": history.best_epoch, "best_val_loss": history.to_dict()["best_val_loss"],
                   "stopped": history.stopped, "seconds": history.seconds, **history.timing}
        for logger in self.loggers:
            logger.finish(summary)
        return history


class _Selection:
    """Model selection during :meth:`Trainer.fit`: validates (``config.select_on``), keeps the best weights seen (the
    starting ones included), counts evaluations without improvement, and restores the best at the end."""

    def __init__(self, trainer: Trainer, history: TrainHistory) -> None:
        self.trainer, self.history = trainer, history
        self.best_state: dict[str, torch.Tensor] | None = None
        self.stale = 0

    def validate(self, step: int, epoch: int) -> None:
        trainer, history = self.trainer, self.history
        val = trainer.validation_loss(trainer.split.val)
        history.validations.append({"step": step, "epoch": epoch, "val_loss": val})
        if trainer.split.val.size and val < history.best_val_loss * (1 - trainer.config.min_delta):
            history.best_val_loss, history.best_epoch, history.best_step, self.stale = val, epoch, step, 0
            self.best_state = {k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()
                               if not k.startswith(FROZEN_PREFIX)}  # a frozen pretrained backbone never changes
        else:
            self.stale += 1

    def patience_spent(self, epoch: int) -> bool:
        config = self.trainer.config
        return bool(self.trainer.split.val.size) and self.stale >= config.patience and epoch + 1 >= config.min_epochs

    def restore(self) -> None:
        if self.best_state is not None:
            self.trainer.model.load_state_dict(self.best_state, strict=False)


@torch.no_grad()
def _pull_toward(params: list[torch.Tensor], start: list[torch.Tensor], rate: float) -> None:
    """``start_decay``: move every parameter ``rate`` (at most all) of the way back to where training started."""
    rate = min(rate, 1.0)
    for p, p0 in zip(params, start, strict=True):
        p.sub_(rate * (p - p0))
