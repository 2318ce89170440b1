"""``TrainConfig``: everything that decides how one model is trained, as plain data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from gwm_model.nn.model import from_known_keys
from gwm_model.training.autoregression import BASES
from gwm_model.training.change_scale import TARGET_SPACES
from gwm_model.training.objectives import MaskingConfig

OBJECTIVES = ("masked", "diffusion")
SELECTIONS = ("forecast", "masked")
ORDERS = ("random", "easy_to_hard", "self_paced")
DECAYS = ("cosine", "linear", "constant")


@dataclass
class TrainConfig:
    """How to train.

    Length: ``steps`` optimiser steps at most (``None``: ``epochs`` full passes; 0: no training); at least
    ``min_epochs`` epochs before early stopping may end training. Early stopping: stop after
    ``patience`` evaluations without a validation loss below ``best * (1 - min_delta)``
    (``min_delta`` is the convergence threshold); the best weights are restored at the end. What the
    validation loss measures (``select_on``): ``forecast``, the task the evaluation scores (only the cells
    not yet published at each validation anchor, no extra masking draw), or ``masked``, the training
    objective (its masking draw fixed). The starting weights are validated too (step 0) and are kept when
    no trained state beats them, so training cannot hand back a model worse on validation than where it
    started (for a fork of an untrained trunk: its base forecast). When: every ``eval_steps`` optimiser
    steps, or (``None``) at the end of every ``eval_every``-th epoch.
    Learning rate: linear warm-up over ``warmup_steps``, then ``decay`` to ``lr * min_lr_ratio``.
    Split: anchors whose window ends by the canvas's ``train_end`` train; the last ``val_fraction`` of
    them (after a gap of one window, so no validation target is a training target) validate; anchors
    after ``train_end`` are the test set for evaluation. ``precision``: ``auto`` is bf16 autocast on
    CUDA and float32 on CPU. ``target_space``: ``level`` (the correction to the latest visible value in
    normalised level units) or ``change`` (in units of each field's typical one-step change, see
    :mod:`gwm_model.training.change_scale`). ``start_decay``: a decoupled pull toward the weights training
    started from (each step ``w -= lr * start_decay * (w - w_start)``, beside AdamW's ``weight_decay``
    toward zero): a specialist forked from the trunk stays near it, so its parents' changes interfere
    less when a join averages them (0: off; the trunk, which starts from random weights, ignores it).
    ``base_forecast``: where the prediction of a cell at or after the anchor starts before the network's
    correction: ``ar`` (each field's AR(``base_order``) forecast from its whole published history, fitted on the
    training steps before validation; see :mod:`gwm_model.training.autoregression`) or ``persistence`` (the latest
    value visible inside the window, what the model did before).
    """

    objective: str = "masked"
    target_space: str = "level"
    base_forecast: str = "ar"
    base_order: int = 3
    context: int = 24
    horizon: int = 4
    batch_size: int = 32
    steps: int | None = 600
    epochs: int = 50
    min_epochs: int = 2
    windows_per_epoch: int | None = None
    lr: float = 1e-3
    warmup_steps: int = 50
    decay: str = "cosine"
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    start_decay: float = 0.0
    grad_clip: float = 1.0
    patience: int = 5
    min_delta: float = 1e-3
    val_fraction: float = 0.15
    eval_every: int = 1
    eval_steps: int | None = None
    select_on: str = "forecast"
    seed: int = 0
    window_order: str = "random"
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    diffusion_samples: int = 16
    diffusion_steps: int = 25
    device: str = "auto"
    precision: str = "auto"
    loggers: tuple[str, ...] = ("console",)

    def __post_init__(self) -> None:
        if isinstance(self.masking, dict):
            self.masking = MaskingConfig(**self.masking)
        self.loggers = tuple(self.loggers)
        checks = [(self.objective in OBJECTIVES, f"objective must be one of {OBJECTIVES}, got '{self.objective}'"),
                  (self.target_space in TARGET_SPACES,
                   f"target_space must be one of {TARGET_SPACES}, got '{self.target_space}'"),
                  (self.base_forecast in BASES, f"base_forecast must be one of {BASES}, got '{self.base_forecast}'"),
                  (self.base_order >= 1, f"base_order must be >= 1, got {self.base_order}"),
                  (self.window_order in ORDERS, f"window_order must be one of {ORDERS}, got '{self.window_order}'"),
                  (self.decay in DECAYS, f"decay must be one of {DECAYS}, got '{self.decay}'"),
                  (self.context >= 1 and self.horizon >= 0, "context must be >= 1 and horizon >= 0"),
                  (self.start_decay >= 0, f"start_decay must be >= 0, got {self.start_decay}"),
                  (self.batch_size >= 1, "batch_size must be >= 1"),
                  (self.steps is None or self.steps >= 0, "steps must be >= 0 (0: do not train) or None"),
                  (self.lr > 0, "lr must be positive"),
                  (0 <= self.val_fraction < 1, "val_fraction must be in [0, 1)"),
                  (self.precision in ("auto", "bf16", "fp32"), "precision must be auto, bf16 or fp32"),
                  (self.eval_every >= 1, "eval_every must be >= 1"),
                  (self.eval_steps is None or self.eval_steps >= 1, "eval_steps must be >= 1 or None"),
                  (self.select_on in SELECTIONS, f"select_on must be one of {SELECTIONS}, got '{self.select_on}'"),
                  (self.patience >= 0, "patience must be >= 0"),
                  (self.warmup_steps >= 0, "warmup_steps must be >= 0"),
                  (0 <= self.min_lr_ratio <= 1, "min_lr_ratio must be in [0, 1]"),
                  (self.windows_per_epoch is None or self.windows_per_epoch >= 1, "windows_per_epoch must be >= 1")]
        errors = [message for ok, message in checks if not ok]
        if errors:
            raise ValueError("invalid TrainConfig: " + "; ".join(errors))

    @property
    def window(self) -> int:
        return self.context + self.horizon

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["loggers"] = list(self.loggers)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        return from_known_keys(cls, data, "train config")
