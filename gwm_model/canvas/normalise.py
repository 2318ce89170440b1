"""Per-field normalisation statistics, fitted on the training period only and kept as plain data.

Training cells are those whose observation both describes a date on or before ``train_end`` and
was published by the end of that day: the statistics a person could have computed on
``train_end``, so no later value (nor a late release of an earlier one) moves them. A field's slots
share one mean and standard deviation (a vector field is pooled over its slots). A field with no
training cells gets mean 0 and std 1; a constant one (spread below 1e-9 of its scale) gets std 1,
so its values normalise to 0 instead of dividing by zero.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NormStats:
    """Mean, standard deviation and training-cell count per field path."""

    train_end: str  # ISO date
    mean: dict[str, float]
    std: dict[str, float]
    count: dict[str, int]

    @classmethod
    def of_arrays(cls, paths: Sequence[str], mean: np.ndarray, std: np.ndarray, count: np.ndarray,
                  train_end: dt.date | str) -> NormStats:
        """Statistics from per-field arrays in ``paths`` order."""
        return cls(train_end=str(np.datetime64(train_end, "D")), mean=dict(zip(paths, mean.tolist(), strict=True)),
                   std=dict(zip(paths, std.tolist(), strict=True)), count=dict(zip(paths, count.tolist(), strict=True)))

    def slot_arrays(self, paths: Sequence[str], slots: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std per value slot, for fields ``paths`` taking ``slots`` slots each."""
        mean = np.repeat([self.mean[p] for p in paths], slots)
        std = np.repeat([self.std[p] for p in paths], slots)
        return mean, std

    def apply(self, raw: np.ndarray, paths: Sequence[str], slots: Sequence[int]) -> np.ndarray:
        """``(raw - mean) / std`` per slot along the last axis."""
        mean, std = self.slot_arrays(paths, slots)
        return (raw - mean) / std

    def invert(self, normalised: np.ndarray, paths: Sequence[str], slots: Sequence[int]) -> np.ndarray:
        """Back to the transformed series' own units."""
        mean, std = self.slot_arrays(paths, slots)
        return normalised * std + mean

    def to_dict(self) -> dict[str, object]:
        return {"train_end": self.train_end,
                "fields": {p: {"mean": self.mean[p], "std": self.std[p], "count": self.count[p]} for p in self.mean}}

    @classmethod
    def from_dict(cls, data: dict) -> NormStats:
        fields = data["fields"]
        return cls(train_end=data["train_end"], mean={p: float(s["mean"]) for p, s in fields.items()},
                   std={p: float(s["std"]) for p, s in fields.items()},
                   count={p: int(s["count"]) for p, s in fields.items()})


def _known_by_us(train_end: dt.date | str) -> tuple[np.datetime64, int]:
    end_day = np.datetime64(train_end, "D")
    return end_day, int((end_day + np.timedelta64(1, "D")).astype("datetime64[us]").astype(np.int64))


def training_cells(presence: np.ndarray, cell_ts: np.ndarray, available_us: np.ndarray,
                   train_end: dt.date | str) -> np.ndarray:
    """``(T, F)`` mask of present cells dated on or before ``train_end`` and published by the end of that day."""
    return presence & training_rows(cell_ts, available_us, train_end)


def training_rows(ts: np.ndarray, available_us: np.ndarray, train_end: dt.date | str) -> np.ndarray:
    """Mask of observations (dated ``ts``, published at ``available_us``) that are training data."""
    end_day, known_by = _known_by_us(train_end)
    return (ts <= end_day) & (available_us < known_by)


MIN_NORM_CELLS = 52  # a year of weekly data; fewer training cells and the spread is floored (see _guarded)
SHORT_HISTORY_FLOOR = 0.25  # ... at this share of the level's magnitude


def _guarded(mean, std, count):
    """The spread to normalise by (scalars or arrays alike): ``std``, or 1 when it is (numerically) zero. With
    fewer than :data:`MIN_NORM_CELLS` training cells a spread from a handful of points is too small to trust (a
    volatility index seen for a calm week), so it is floored at a quarter of the level's magnitude."""
    std = np.where(np.asarray(count) < MIN_NORM_CELLS, np.maximum(std, SHORT_HISTORY_FLOOR * np.abs(mean)), std)
    return np.where(std > 1e-9 * np.maximum(1.0, np.abs(mean)), std, 1.0)


def fit_norm_stats(raw: np.ndarray, paths: Sequence[str], slots: Sequence[int], train_mask: np.ndarray,
                   train_end: dt.date | str) -> NormStats:
    """Fit per-field statistics on the ``(T, S)`` raw values where ``train_mask`` (``(T, F)``) is set."""
    offsets = np.concatenate([[0], np.cumsum(slots)])
    mean: dict[str, float] = {}
    std: dict[str, float] = {}
    count: dict[str, int] = {}
    for i, path in enumerate(paths):
        cells = raw[train_mask[:, i], offsets[i]:offsets[i + 1]]
        count[path] = int(cells.shape[0])
        if cells.size == 0:
            mean[path], std[path] = 0.0, 1.0
            continue
        m, s = float(cells.mean()), float(cells.std())
        mean[path] = m
        std[path] = float(_guarded(m, s, count[path]))
    return NormStats(train_end=str(np.datetime64(train_end, "D")), mean=mean, std=std, count=count)


def fit_rows(num_fields: int, field: np.ndarray, values: np.ndarray,
             blocks: dict[int, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-field mean, std and count of :func:`fit_norm_stats` from training cells listed one per row.

    ``field`` (sorted field indices) and ``values`` (float64) hold the training cells of one-slot
    fields; ``blocks`` maps the index of a multi-slot field to its ``(n, k)`` training cells (pooled
    over slots). Fields with no cells get mean 0 and std 1.
    """
    count = np.bincount(field, minlength=num_fields)[:num_fields]
    mean, std = np.zeros(num_fields), np.ones(num_fields)
    if field.size:
        starts = np.flatnonzero(np.r_[True, field[1:] != field[:-1]])
        seen = field[starts]
        m = np.add.reduceat(values, starts) / count[seen]
        deviation = values - np.repeat(m, np.diff(np.r_[starts, field.size]))
        s = np.sqrt(np.add.reduceat(deviation * deviation, starts) / count[seen])
        mean[seen] = m
        std[seen] = _guarded(m, s, count[seen])
    for i, cells in (blocks or {}).items():
        count[i] = cells.shape[0]
        if cells.size:
            mean[i] = float(cells.mean())
            std[i] = float(_guarded(mean[i], float(cells.std()), int(count[i])))
    return mean, std, count
