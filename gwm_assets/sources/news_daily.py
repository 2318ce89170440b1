"""``news_daily``: per-stream, per-day mean MiniLM embedding of the stored texts in ``raw_news``.

Streams: ``daily`` is every live headline feed together (input to events.news_embedding); each dated
text corpus (feed ``corpus:<name>``, e.g. the embedded default's public posts) is its own stream under
its feed name, so the catalog can map it onto its own field (events.social_signal).
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from gwm_assets.sources import news
from gwm_assets.sources.raw_tables import RAW_SPECS
from gwm_assets.warehouse.connection import registered

HEADLINES_STREAM = "daily"
CORPUS_PREFIX = "corpus:"
STREAM_SQL = f"CASE WHEN feed LIKE '{CORPUS_PREFIX}%' THEN feed ELSE '{HEADLINES_STREAM}' END"


def write_news_daily(conn: duckdb.DuckDBPyConnection) -> int:
    """Recompute the daily aggregate from ``raw_news``; call inside a transaction. Returns the day count."""
    conn.execute(RAW_SPECS["news"].ddl())
    streams = conn.execute(f"SELECT {STREAM_SQL} AS stream, any_value(provenance) FROM {news.RAW_TABLE} "
                           "GROUP BY stream ORDER BY stream").fetchall()
    parts = []
    for stream, provenance in streams:
        texts = conn.sql(f"SELECT published_at, embedding FROM {news.RAW_TABLE} WHERE {STREAM_SQL} = $stream "
                         "ORDER BY published_at", params={"stream": stream}).to_arrow_table()
        daily = news.daily_aggregate(texts)
        parts.append(daily.add_column(0, "stream", pa.array([stream] * daily.num_rows, pa.string()))
                     .append_column("provenance", pa.array([provenance] * daily.num_rows, pa.string())))
    if parts:
        daily = pa.concat_tables(parts)
    else:
        empty = news.DAILY_SCHEMA.insert(0, pa.field("stream", pa.string())).append(pa.field("provenance", pa.string()))
        daily = empty.empty_table()
    with registered(conn, "incoming_news_daily", daily):
        conn.execute("CREATE OR REPLACE TABLE news_daily AS SELECT * FROM incoming_news_daily")
    return daily.num_rows
