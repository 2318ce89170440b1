"""Upserts into raw tables: new keys inserted, changed values updated, NULL keys matched, nothing lost."""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import pyarrow as pa

from gwm_assets.sources.fred import ARROW_SCHEMA, RAW
from gwm_assets.warehouse.raw_store import upsert

T0, T1 = datetime(2026, 1, 1), datetime(2026, 1, 2)


def rows(*items):
    return pa.Table.from_pylist([{"series_id": s, "date": d, "realtime_start": rt, "realtime_end": None, "value": v}
                                 for s, d, rt, v in items], schema=ARROW_SCHEMA)


def test_insert_update_and_unchanged():
    conn = duckdb.connect()
    first = upsert(conn, RAW, rows(("UNRATE", date(2024, 1, 1), None, 3.7), ("UNRATE", date(2024, 2, 1), None, 3.9)),
                   T0, provenance="bundled:x")
    assert (first.fetched, first.inserted, first.updated, first.unchanged) == (2, 2, 0, 0)
    # same rows again: nothing changes; a NULL vintage matches the stored NULL vintage
    again = upsert(conn, RAW, rows(("UNRATE", date(2024, 1, 1), None, 3.7)), T1, provenance="bundled:x")
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 1)
    # a revised value and a new vintage
    revised = upsert(conn, RAW, rows(("UNRATE", date(2024, 2, 1), None, 4.0),
                                     ("UNRATE", date(2024, 2, 1), date(2024, 3, 8), 3.9)), T1, provenance="live:fred")
    assert (revised.inserted, revised.updated) == (1, 1)
    stored = conn.execute("SELECT date, realtime_start, value, provenance, ingested_at, updated_at FROM raw_fred "
                          "ORDER BY date, realtime_start NULLS FIRST").fetchall()
    assert stored == [(date(2024, 1, 1), None, 3.7, "bundled:x", T0, T0),
                      (date(2024, 2, 1), None, 4.0, "live:fred", T0, T1),
                      (date(2024, 2, 1), date(2024, 3, 8), 3.9, "live:fred", T1, T1)]


def test_duplicate_keys_in_one_batch_keep_the_first():
    conn = duckdb.connect()
    upsert(conn, RAW, rows(("X", date(2024, 1, 1), None, 1.0)), T0, provenance="p")
    counts = upsert(conn, RAW, rows(("X", date(2024, 1, 1), None, 2.0), ("X", date(2024, 1, 1), None, 3.0),
                                    ("X", date(2024, 1, 2), None, 5.0), ("X", date(2024, 1, 2), None, 6.0)),
                    T1, provenance="p")
    assert (counts.fetched, counts.inserted, counts.updated) == (2, 1, 1)
    assert conn.execute("SELECT date, value FROM raw_fred ORDER BY date").fetchall() == [
        (date(2024, 1, 1), 2.0), (date(2024, 1, 2), 5.0)]
