"""Per-series transforms, computed on a series' own dates before it is aligned to a time axis.

A change transform compares an observation with the series' previous observation (the previous
month for a monthly series), never with the previous canvas step, so a monthly series on a daily
axis yields month-over-month changes. A derived value is published only once every value it reads
was: ``available_at`` becomes the latest publication time among its inputs. Results that are not
finite (a change from zero, the log of a negative level) are dropped, as is the first observation
of a change transform, which has nothing to compare with.

``pct_change`` is in percent, matching the warehouse catalog's convention. ``zscore`` standardises
each observation with the mean and standard deviation of the series up to and including it (an
expanding window), so it never reads a later value; a series' first observation is dropped and a
value with zero spread so far becomes 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

TRANSFORMS: tuple[str, ...] = ("level", "diff", "pct_change", "log_return", "zscore")


@dataclass(frozen=True)
class Series:
    """One field's observations sorted by date: ``ts`` (datetime64[D]), ``available_us`` (int64 µs since
    the epoch) and ``values`` (float64, shape ``(n,)`` for a scalar, ``(n, k)`` for a vector)."""

    ts: np.ndarray
    available_us: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.size)

    def keep(self, mask: np.ndarray) -> Series:
        return Series(self.ts[mask], self.available_us[mask], self.values[mask])


def _change(series: Series, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Series:
    if len(series) < 2:
        return series.keep(np.zeros(len(series), dtype=bool))
    with np.errstate(divide="ignore", invalid="ignore"):
        values = fn(series.values[1:], series.values[:-1])
    available = np.maximum(series.available_us[1:], series.available_us[:-1])
    return Series(series.ts[1:], available, values)


def _expanding_zscore(series: Series) -> Series:
    x = series.values - series.values[0] if len(series) else series.values  # shift: keeps sums small
    count = np.arange(1, len(series) + 1, dtype=np.float64)
    mean = np.cumsum(x) / count
    var = np.maximum(np.cumsum(x * x) / count - mean * mean, 0.0)
    std = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), (x - mean) / std, 0.0)
    available = np.maximum.accumulate(series.available_us) if len(series) else series.available_us
    return Series(series.ts, available, z).keep(np.arange(len(series)) >= 1)


def apply_transform(series: Series, name: str, path: str = "") -> Series:
    """``series`` transformed by ``name`` (one of :data:`TRANSFORMS`), non-finite results dropped."""
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform '{name}' for field '{path}'. Fix: use one of {', '.join(TRANSFORMS)}")
    if name == "level":
        out = series
    elif series.values.ndim > 1:
        raise ValueError(f"field '{path}' holds vectors; only the 'level' transform applies to vectors, not '{name}'")
    elif name == "diff":
        out = _change(series, lambda now, before: now - before)
    elif name == "pct_change":
        out = _change(series, lambda now, before: 100.0 * (now / before - 1.0))
    elif name == "log_return":
        out = _change(series, lambda now, before: np.log(now / before))
    else:
        out = _expanding_zscore(series)
    finite = np.isfinite(out.values).reshape(len(out), -1).all(axis=1)
    return out if finite.all() else out.keep(finite)
