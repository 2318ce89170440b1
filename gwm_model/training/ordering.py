"""Window order for a training epoch: plain shuffling or a curriculum (easy windows first).

A strategy (:class:`WindowOrder`) answers, per epoch, which dataset indices to visit and in what
order; the training loop batches them and reports each window's loss back through ``update``:

* :class:`RandomOrder` - every window, a fresh permutation each epoch;
* :class:`EasyToHardOrder` - competence-based curriculum over a fixed difficulty score (e.g. the
  window's persistence error, or :func:`difficulty_from_variability`): the pool starts with the
  easiest share and grows linearly to all windows;
* :class:`SelfPacedOrder` - self-paced learning: the pool is chosen by the model's own latest loss
  per window, starting with the low-loss windows and growing to all.

Every choice that involves chance uses the ``rng`` passed to ``epoch_indices``, so the order is
reproducible from the seed. :func:`make_order` builds a strategy by name.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import numpy as np

ORDER_NAMES = ("random", "easy_to_hard", "self_paced")


@runtime_checkable
class WindowOrder(Protocol):
    """Which windows an epoch visits, in order, and what the strategy learns from per-window losses."""

    def epoch_indices(self, epoch: int, rng: np.random.Generator) -> np.ndarray: ...

    def update(self, indices: np.ndarray, losses: np.ndarray) -> None: ...


def _check_size(n: int, who: str) -> int:
    if int(n) != n or n < 1:
        raise ValueError(f"{who}: the dataset size must be a positive integer, got {n!r}")
    return int(n)


def _check_epoch(epoch: int) -> int:
    if int(epoch) != epoch or epoch < 0:
        raise ValueError(f"epoch must be a non-negative integer (0 for the first epoch), got {epoch!r}")
    return int(epoch)


def _check_fraction(value: float, name: str) -> float:
    if not 0 < value <= 1:
        raise ValueError(f"{name}={value}: must lie in (0, 1]")
    return float(value)


class RandomOrder:
    """All ``n`` windows, in a new random permutation every epoch."""

    def __init__(self, n: int) -> None:
        self.n = _check_size(n, "RandomOrder")

    def epoch_indices(self, epoch: int, rng: np.random.Generator) -> np.ndarray:
        _check_epoch(epoch)
        return rng.permutation(self.n)

    def update(self, indices: np.ndarray, losses: np.ndarray) -> None:
        """Losses do not change a random order."""


class EasyToHardOrder:
    """Competence-based curriculum over a fixed per-window ``difficulty`` (lower = easier).

    The competence ``c(e) = start_fraction + (1 - start_fraction) * min(1, e / ramp_epochs)`` grows
    linearly from ``start_fraction`` at epoch 0 to 1 at epoch ``ramp_epochs`` (``ramp_epochs=0``:
    everything from the start). Epoch ``e`` visits the ``ceil(c(e) * n)`` easiest windows. The pool
    is shuffled, not sorted: sorted batches would hold windows of near-identical difficulty and give
    biased, highly correlated gradients; the curriculum acts through which windows are in the pool.
    Windows of equal difficulty are ranked by index, so the pool is the same for every seed.
    """

    def __init__(self, difficulty: np.ndarray, start_fraction: float = 0.3, ramp_epochs: int = 5) -> None:
        difficulty = np.asarray(difficulty, dtype=np.float64)
        if difficulty.ndim != 1 or difficulty.size == 0:
            raise ValueError(f"EasyToHardOrder: difficulty must be a non-empty 1-D array (one score per window), "
                             f"got shape {difficulty.shape}")
        if not np.isfinite(difficulty).all():
            bad = np.flatnonzero(~np.isfinite(difficulty))
            raise ValueError(f"EasyToHardOrder: difficulty has {bad.size} NaN/inf scores (first at window "
                             f"{bad[0]}); give those windows a finite score, e.g. the largest one")
        if ramp_epochs < 0:
            raise ValueError(f"EasyToHardOrder: ramp_epochs={ramp_epochs} must be >= 0")
        self.difficulty = difficulty
        self.n = difficulty.size
        self.start_fraction = _check_fraction(start_fraction, "start_fraction")
        self.ramp_epochs = int(ramp_epochs)
        self.ranking = np.argsort(difficulty, kind="stable")  # easiest first, ties by index

    def competence(self, epoch: int) -> float:
        """The share of windows (easiest first) in epoch ``epoch``'s pool."""
        epoch = _check_epoch(epoch)
        if self.ramp_epochs == 0 or epoch >= self.ramp_epochs:
            return 1.0
        return self.start_fraction + (1.0 - self.start_fraction) * epoch / self.ramp_epochs

    def pool(self, epoch: int) -> np.ndarray:
        """The indices of epoch ``epoch``'s pool, easiest first."""
        size = max(1, min(self.n, math.ceil(self.competence(epoch) * self.n - 1e-9)))  # 0.3 * 10 is 3, not 4
        return self.ranking[:size]

    def epoch_indices(self, epoch: int, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(self.pool(epoch))

    def update(self, indices: np.ndarray, losses: np.ndarray) -> None:
        """The difficulty is fixed; losses do not change it."""


def difficulty_from_variability(targets: np.ndarray, mask: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """A cheap difficulty score per window: the mean squared change between consecutive observed steps.

    ``targets`` is ``(n, L, S)`` (windows, steps, value slots) and ``mask`` a boolean array of the same
    shape, true where a target is present (expand a per-field mask first: ``mask[..., slot_field]``).
    For each slot, every present value is compared with the previous present value of that slot in
    the window, so a monthly series on a daily axis is scored on its month-to-month changes, and with
    dense data this is the plain step-to-step change. Cells with non-finite values count as missing.
    Windows without a single pair of observations score ``fill``. Larger = harder to predict by
    persistence. Scores are not comparable across differently normalised fields; use normalised data.
    """
    targets = np.asarray(targets, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if targets.ndim != 3 or mask.shape != targets.shape:
        raise ValueError(f"difficulty_from_variability: targets must be (n, L, S) and mask the same shape, got "
                         f"{targets.shape} and {mask.shape}")
    present = mask & np.isfinite(targets)
    steps = np.arange(targets.shape[1]).reshape(1, -1, 1)
    last_seen = np.maximum.accumulate(np.where(present, steps, -1), axis=1)  # latest present step up to t
    previous = np.concatenate([np.full_like(last_seen[:, :1], -1), last_seen[:, :-1]], axis=1)
    pair = present & (previous >= 0)
    clean = np.where(present, targets, 0.0)
    earlier = np.take_along_axis(clean, np.maximum(previous, 0), axis=1)
    squared = np.where(pair, (clean - earlier) ** 2, 0.0)
    count = pair.sum(axis=(1, 2))
    total = squared.sum(axis=(1, 2))
    return np.where(count > 0, total / np.maximum(count, 1), float(fill))


class SelfPacedOrder:
    """Self-paced learning: visit the windows the model currently finds easiest, then widen.

    Epochs ``0 .. warmup_epochs - 1`` visit every window in random order, which measures a loss for
    each. From epoch ``e >= warmup_epochs`` the pool is every window whose latest loss is at most the
    ``q(e)``-quantile of the known losses, ``q(e) = min(1, start_quantile + growth * (e -
    warmup_epochs))``, plus every window without a measured loss yet (so nothing is starved of a
    first measurement); at ``q = 1`` it is all windows. The pool is shuffled. ``update`` records
    each window's loss: the latest value, or with ``smoothing > 0`` an exponential moving average
    (``smoothing`` = weight of the previous value). Non-finite losses are ignored.
    """

    def __init__(self, n: int, start_quantile: float = 0.5, growth: float = 0.1, warmup_epochs: int = 1,
                 smoothing: float = 0.0) -> None:
        self.n = _check_size(n, "SelfPacedOrder")
        self.start_quantile = _check_fraction(start_quantile, "start_quantile")
        if growth < 0:
            raise ValueError(f"SelfPacedOrder: growth={growth} must be >= 0 (quantile added per epoch)")
        if warmup_epochs < 0:
            raise ValueError(f"SelfPacedOrder: warmup_epochs={warmup_epochs} must be >= 0")
        if not 0 <= smoothing < 1:
            raise ValueError(f"SelfPacedOrder: smoothing={smoothing} must lie in [0, 1)")
        self.growth, self.warmup_epochs, self.smoothing = float(growth), int(warmup_epochs), float(smoothing)
        self.losses = np.full(self.n, np.nan)  # NaN = not measured yet

    def quantile(self, epoch: int) -> float:
        """The loss quantile that bounds epoch ``epoch``'s pool (1.0 during warm-up and once grown)."""
        epoch = _check_epoch(epoch)
        if epoch < self.warmup_epochs:
            return 1.0
        return min(1.0, self.start_quantile + self.growth * (epoch - self.warmup_epochs))

    def pool(self, epoch: int) -> np.ndarray:
        """The indices of epoch ``epoch``'s pool, ascending."""
        level = self.quantile(epoch)
        known = ~np.isnan(self.losses)
        if level >= 1.0 or not known.any():
            return np.arange(self.n)
        threshold = np.quantile(self.losses[known], level)
        return np.flatnonzero(~known | (self.losses <= threshold))

    def epoch_indices(self, epoch: int, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(self.pool(epoch))

    def update(self, indices: np.ndarray, losses: np.ndarray) -> None:
        """Record per-window losses (array-likes: numpy arrays, lists or CPU tensors without grad)."""
        indices = np.asarray(indices).astype(np.int64, copy=False).reshape(-1)
        losses = np.asarray(losses, dtype=np.float64).reshape(-1)
        if indices.shape != losses.shape:
            raise ValueError(f"SelfPacedOrder.update: {indices.size} indices but {losses.size} losses; pass one "
                             "loss per window")
        if indices.size and (indices.min() < 0 or indices.max() >= self.n):
            raise ValueError(f"SelfPacedOrder.update: window indices must lie in [0, {self.n}), got "
                             f"{indices.min()}..{indices.max()}")
        keep = np.isfinite(losses)
        for index, loss in zip(indices[keep], losses[keep], strict=True):  # in order: repeats average in turn
            old = self.losses[index]
            self.losses[index] = loss if np.isnan(old) else self.smoothing * old + (1 - self.smoothing) * loss

    def state_dict(self) -> dict:
        """The measured losses, to save with a checkpoint."""
        return {"losses": self.losses.copy()}

    def load_state_dict(self, state: dict) -> None:
        losses = np.asarray(state["losses"], dtype=np.float64)
        if losses.shape != (self.n,):
            raise ValueError(f"SelfPacedOrder: saved losses cover {losses.size} windows, this dataset has {self.n}")
        self.losses = losses.copy()


def make_order(name: str, n: int, difficulty: np.ndarray | None = None, **kwargs) -> WindowOrder:
    """The window order called ``name`` (one of :data:`ORDER_NAMES`; ``-`` and case are ignored) for
    ``n`` windows. ``easy_to_hard`` needs ``difficulty`` (one score per window); ``kwargs`` go to the
    strategy's constructor."""
    key = str(name).strip().lower().replace("-", "_")
    if key == "random":
        return RandomOrder(n, **kwargs)
    if key == "self_paced":
        return SelfPacedOrder(n, **kwargs)
    if key == "easy_to_hard":
        if difficulty is None:
            raise ValueError("window order 'easy_to_hard' needs a difficulty score per window, e.g. "
                             "difficulty_from_variability(targets, mask) or each window's persistence error")
        if len(difficulty) != n:
            raise ValueError(f"window order 'easy_to_hard': {len(difficulty)} difficulty scores for {n} windows")
        return EasyToHardOrder(difficulty, **kwargs)
    raise ValueError(f"unknown window order {name!r}; choose from {', '.join(ORDER_NAMES)}")
