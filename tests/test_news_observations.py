"""Headlines -> raw_news -> news_daily -> observations (events.news_embedding as a vector)."""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import numpy as np
import pyarrow as pa

from gwm_assets.observations.build import build_observations, write_source_series
from gwm_assets.sources import news
from gwm_assets.sources.base import FetchResult
from gwm_assets.sources.catalog import load_catalog
from gwm_assets.sources.news_daily import write_news_daily
from gwm_assets.sources.refresh import write_batch
from gwm_assets.warehouse.connection import transaction
from gwm_assets.warehouse.ledger import Provenance

NOW = datetime(2026, 1, 1)


def headline(feed, item, published, vector):
    return {"feed": feed, "item_id": item, "published_at": published, "title": f"headline {item}", "link": None,
            "summary": "", "embedding": vector}


def test_daily_news_embedding_reaches_observations(world):
    e1, e2 = np.eye(384, dtype=np.float32)[:2]
    rows = [headline("fed", "a", datetime(2024, 3, 20, 18, 0), e1.tolist()),
            headline("fed", "b", datetime(2024, 3, 20, 19, 30), e2.tolist()),
            headline("ecb", "c", datetime(2024, 3, 21, 9, 0), e1.tolist())]
    table = pa.Table.from_pylist(rows, schema=news.RAW_SCHEMA)
    prov = Provenance("live:news", "news", "test feeds", "test", "test")
    conn = duckdb.connect()
    with transaction(conn):
        write_batch(conn, "news", [FetchResult(table)], prov, "run", NOW)
        assert write_news_daily(conn) == 2
        write_source_series(conn, load_catalog(world))
        build_observations(conn, NOW)
    got = conn.execute("SELECT ts, value, available_at, vector FROM observations "
                       "WHERE field_path = 'events.news_embedding' ORDER BY ts").fetchall()
    assert [(r[0], r[1], r[2]) for r in got] == [(date(2024, 3, 20), 2.0, datetime(2024, 3, 20, 19, 30)),
                                                 (date(2024, 3, 21), 1.0, datetime(2024, 3, 21, 9, 0))]
    first = np.array(got[0][3])
    assert first.shape == (384,) and abs(np.linalg.norm(first) - 1) < 1e-5
    assert abs(first[0] - first[1]) < 1e-6 and first[0] > 0.7  # the mean direction of e1 and e2
