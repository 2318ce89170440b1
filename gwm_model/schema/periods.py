"""Update periods of world fields: how often a field's real-world value changes.

A period is a name (``tick`` ... ``decadal``) with a nominal length in days. ``tick`` is the
finest grain: a value that can change at any moment (a market price, a live state); its nominal
length is zero days, so on a daily canvas it is simply observed every day it is published.
"""

from __future__ import annotations

PERIOD_DAYS: dict[str, float] = {
    "tick": 0.0,
    "daily": 1.0,
    "weekly": 7.0,
    "monthly": 365.25 / 12,
    "quarterly": 365.25 / 4,
    "annual": 365.25,
    "decadal": 3652.5,
}

PERIODS: tuple[str, ...] = tuple(PERIOD_DAYS)


def period_rank(period: str) -> int:
    """Position of ``period`` from fastest (0) to slowest."""
    return PERIODS.index(period)


def median_period(periods: list[str]) -> str:
    """The median of a list of periods (upper median for even lengths), as a period name."""
    if not periods:
        raise ValueError("median_period needs at least one period")
    ordered = sorted(periods, key=period_rank)
    return ordered[len(ordered) // 2]
