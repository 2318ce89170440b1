"""``news_daily``: per-day mean MiniLM embedding of the stored headlines (input to events.news_embedding)."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from gwm_assets.sources import news
from gwm_assets.warehouse.connection import registered


def write_news_daily(conn: duckdb.DuckDBPyConnection) -> int:
    """Recompute the daily aggregate from ``raw_news``; call inside a transaction. Returns the day count."""
    headlines = conn.sql(f"SELECT published_at, embedding FROM {news.RAW_TABLE} ORDER BY published_at"
                         ).to_arrow_table()
    daily = news.daily_aggregate(headlines)
    daily = daily.append_column("provenance", pa.array(["live:news"] * daily.num_rows, pa.string()))
    with registered(conn, "incoming_news_daily", daily):
        conn.execute("CREATE OR REPLACE TABLE news_daily AS SELECT * FROM incoming_news_daily")
    return daily.num_rows
