"""The time axis of a canvas: a regular calendar of steps, and which step a date falls in.

A step is a half-open interval of days ``[start, next start)``. A date belongs to the step whose
interval contains it, so on a business-day axis a Saturday belongs to Friday's step, and on a
monthly axis every day of March belongs to the step that starts on March 1st. The *cutoff* of a
step is the first instant after it: a sample anchored at step ``t`` may see whatever was
published strictly before ``cutoff(t)``, i.e. up to and including the last moment of step ``t``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from gwm_model.schema.periods import period_rank
from gwm_model.schema.spec import FieldSpec

Frequency = Literal["daily", "business", "weekly", "monthly", "quarterly"]
FREQUENCIES: tuple[str, ...] = ("daily", "business", "weekly", "monthly", "quarterly")

DateLike = dt.date | str | np.datetime64

# the canvas frequency that resolves a field period without losing its changes
_PERIOD_FREQUENCY = {"tick": "daily", "daily": "daily", "weekly": "weekly", "monthly": "monthly",
                     "quarterly": "quarterly", "annual": "quarterly", "decadal": "quarterly"}


def as_day(value: DateLike) -> np.datetime64:
    """A date (``datetime.date``, ISO string or numpy datetime) as a ``datetime64[D]``."""
    return np.datetime64(value, "D")


def _check_frequency(frequency: str) -> None:
    if frequency not in FREQUENCIES:
        raise ValueError(f"unknown time-axis frequency '{frequency}'. Fix: use one of {', '.join(FREQUENCIES)}")


def _step_start(day: np.datetime64, frequency: str) -> np.datetime64:
    """Start of the step that contains ``day``."""
    if frequency == "daily":
        return day
    if frequency == "business":
        return np.busday_offset(day, 0, roll="backward")
    if frequency == "weekly":  # weeks start on Monday; 1970-01-01 was a Thursday
        return day - ((day.astype(np.int64) + 3) % 7).astype("timedelta64[D]")
    month = day.astype("datetime64[M]")
    if frequency == "quarterly":
        month = month - (month.astype(np.int64) % 3).astype("timedelta64[M]")
    return month.astype("datetime64[D]")


def _following(last: np.datetime64, frequency: str) -> np.datetime64:
    """Start of the step after the one starting at ``last``."""
    if frequency == "daily":
        return last + np.timedelta64(1, "D")
    if frequency == "business":
        return np.busday_offset(last, 1, roll="forward")
    if frequency == "weekly":
        return last + np.timedelta64(7, "D")
    months = 3 if frequency == "quarterly" else 1
    return (last.astype("datetime64[M]") + np.timedelta64(months, "M")).astype("datetime64[D]")


@dataclass(frozen=True, eq=False)
class TimeAxis:
    """Consecutive steps of one frequency; ``starts`` holds each step's first day (``datetime64[D]``)."""

    frequency: str
    starts: np.ndarray

    def __post_init__(self) -> None:
        _check_frequency(self.frequency)
        if self.starts.ndim != 1 or self.starts.size == 0:
            raise ValueError("a time axis needs at least one step")

    def __len__(self) -> int:
        return int(self.starts.size)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, TimeAxis) and self.frequency == other.frequency
                and np.array_equal(self.starts, other.starts))

    def __hash__(self) -> int:
        return hash((self.frequency, len(self), str(self.starts[0])))

    @cached_property
    def ends(self) -> np.ndarray:
        """First day after each step (exclusive end), ``datetime64[D]``."""
        return np.append(self.starts[1:], _following(self.starts[-1], self.frequency))

    @cached_property
    def cutoffs_us(self) -> np.ndarray:
        """Each step's cutoff instant in microseconds since the epoch (``int64``)."""
        return self.ends.astype("datetime64[us]").astype(np.int64)

    def cutoff(self, step: int) -> np.datetime64:
        return self.ends[step].astype("datetime64[us]")

    def step_of(self, days: np.ndarray | Iterable[DateLike]) -> np.ndarray:
        """Index of the step containing each day; -1 for days before or after the axis."""
        days = np.asarray(days, dtype="datetime64[D]")
        steps = np.searchsorted(self.starts, days, side="right") - 1
        return np.where(days < self.ends[-1], steps, -1)

    def index(self, day: DateLike) -> int:
        """Step containing ``day``; raises if the axis does not cover it."""
        step = int(self.step_of([as_day(day)])[0])
        if step < 0:
            raise ValueError(f"{day} is outside the time axis {self.starts[0]} .. {self.ends[-1]} (exclusive)")
        return step

    def to_dict(self) -> dict[str, object]:
        return {"frequency": self.frequency, "first_step": str(self.starts[0]), "last_step": str(self.starts[-1]),
                "steps": len(self)}

    @classmethod
    def from_dict(cls, data: dict) -> TimeAxis:
        axis = make_time_axis(data["first_step"], data["last_step"], data["frequency"])
        if len(axis) != int(data["steps"]):
            raise ValueError(f"time axis {data} rebuilds to {len(axis)} steps, not {data['steps']}")
        return axis


def make_time_axis(start: DateLike, end: DateLike, frequency: Frequency | str = "daily") -> TimeAxis:
    """Steps of ``frequency`` from the one containing ``start`` to the one containing ``end``."""
    _check_frequency(frequency)
    first, last = _step_start(as_day(start), frequency), _step_start(as_day(end), frequency)
    if last < first:
        raise ValueError(f"time axis end {end} is before its start {start}")
    if frequency == "daily":
        starts = np.arange(first, last + np.timedelta64(1, "D"), dtype="datetime64[D]")
    elif frequency == "business":
        days = np.arange(first, last + np.timedelta64(1, "D"), dtype="datetime64[D]")
        starts = days[np.is_busday(days)]
    elif frequency == "weekly":
        starts = np.arange(first, last + np.timedelta64(7, "D"), 7, dtype="datetime64[D]")
    else:
        step = 3 if frequency == "quarterly" else 1
        months = np.arange(first.astype("datetime64[M]"), last.astype("datetime64[M]") + np.timedelta64(1, "M"),
                           step, dtype="datetime64[M]")
        starts = months.astype("datetime64[D]")
    return TimeAxis(frequency, starts)


def frequency_for_period(period: str) -> str:
    """The coarsest axis frequency that still gives a field of ``period`` a step per change."""
    return _PERIOD_FREQUENCY[period]


def base_frequency(fields: Iterable[FieldSpec]) -> str:
    """A node's base frequency: that of its fastest-changing leaf field (``daily`` when it has none)."""
    periods = [f.period for f in fields if f.kind == "leaf"]
    if not periods:
        return "daily"
    return frequency_for_period(min(periods, key=period_rank))
