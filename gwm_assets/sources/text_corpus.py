"""Dated text corpora shipped inside packages, sent through the news path offline.

A corpus becomes rows of ``raw_news`` exactly like live headlines (feed ``corpus:<name>``, one item per
post, its publication time, its text as the title, the packaged MiniLM embedding) and from there the
``news_daily`` stream ``corpus:<name>`` and the field the catalog maps it onto. Rows without a
parseable date, with an empty text, or repeating a text already taken (retweets and re-posts) are
rejected with the reason and go to quarantine; missing columns raise an error naming the corpus.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from gwm_assets.sources import news
from gwm_assets.sources.base import FetchResult, SourceError
from gwm_assets.sources.embedding_cache import Embedder, Progress, embed_cached
from gwm_assets.sources.news_daily import CORPUS_PREFIX
from gwm_assets.sources.rdatasets_frames import read_item
from gwm_assets.warehouse.ledger import Reject

MINILM_MODEL = "sentence-transformers/all-MiniLM-L6-v2@1110a243"  # the packaged weights' upstream revision


@dataclass(frozen=True)
class Corpus:
    name: str
    package: str  # R package inside rdatasets
    item: str
    id_column: str
    text_column: str
    date_column: str
    origin: str
    licence: str

    @property
    def feed(self) -> str:
        return f"{CORPUS_PREFIX}{self.name}"

    def frame(self) -> pd.DataFrame:
        return read_item(self.package, self.item)


TRUMP_TWEETS = Corpus(
    name="trump_tweets", package="dslabs", item="trump_tweets", id_column="id_str", text_column="text",
    date_column="created_at",
    origin="Trump Twitter Archive (public posts of @realDonaldTrump, 2009-05 to 2018-01), via dslabs",
    licence="GPL-3 (rdatasets package; data from R package dslabs); the posts are public statements")
CORPORA = (TRUMP_TWEETS,)


def _clean(text) -> str:
    return news._plain(text) if isinstance(text, str) else ""


def corpus_rows(corpus: Corpus, frame: pd.DataFrame) -> tuple[list[dict], list[Reject]]:
    """Validated rows (no embedding yet) in publication order, and the rejects with their reasons."""
    missing = [c for c in (corpus.id_column, corpus.text_column, corpus.date_column) if c not in frame.columns]
    if missing:
        raise SourceError(news.SOURCE, f"corpus {corpus.name} ({corpus.package}/{corpus.item}): column(s) {missing} "
                          f"not found; it has {list(frame.columns)}", series=corpus.feed)
    stamps = pd.to_datetime(frame[corpus.date_column], errors="coerce", utc=True)
    order = np.argsort(stamps.to_numpy(dtype="datetime64[ns]"), kind="stable")  # NaT sorts last
    rows, rejects, first_id = [], [], {}
    for position in order:
        raw = frame.iloc[position]
        item_id = str(raw[corpus.id_column])
        text = _clean(raw[corpus.text_column])
        stamp = stamps.iloc[position]
        record = {"row": int(position) + 1, "id": item_id, "text": str(raw[corpus.text_column])[:500],
                  "date": str(raw[corpus.date_column])}
        published = None if pd.isna(stamp) else stamp.tz_convert(None).to_pydatetime()
        if published is None:
            given = raw[corpus.date_column]
            reason = f"row {position + 1}: " + (f"no {corpus.date_column}" if pd.isna(given)
                                                else f"no parseable {corpus.date_column} {given!r}")
        elif not text:
            reason = f"row {position + 1}: empty text"
        elif text in first_id:
            reason = f"row {position + 1}: duplicate text of item {first_id[text]}"
        else:
            first_id[text] = item_id
            rows.append({"feed": corpus.feed, "item_id": item_id, "published_at": published, "title": text,
                         "link": None, "summary": ""})
            continue
        rejects.append(Reject(news.SOURCE, corpus.feed, published, reason, record))
    return rows, rejects


def embedded_corpus(conn: duckdb.DuckDBPyConnection, corpus: Corpus, embedder: Embedder,
                    frame: pd.DataFrame | None = None, progress: Progress | None = None,
                    model: str = MINILM_MODEL, limit: int | None = None) -> tuple[FetchResult, int]:
    """The corpus as ``raw_news`` rows with cached embeddings, and how many texts were embedded now.

    ``limit`` keeps the first ``limit`` accepted posts by publication time (None: all)."""
    rows, rejects = corpus_rows(corpus, corpus.frame() if frame is None else frame)
    rows = rows if limit is None else rows[:limit]
    vectors, computed = embed_cached(conn, [r["title"] for r in rows], embedder, model, progress=progress)
    columns = {name: [r[name] for r in rows] for name in news.RAW_SCHEMA.names if name != "embedding"}
    columns["embedding"] = news._to_list_array(vectors)
    return FetchResult(pa.table(columns, schema=news.RAW_SCHEMA), rejects), computed


def progress_logger(log: Callable[[str], None], name: str, every: int = 2048) -> Progress:
    state = {"next": every, "started": datetime.now()}

    def report(done: int, total: int) -> None:
        if done >= state["next"] or done == total:
            elapsed = (datetime.now() - state["started"]).total_seconds()
            log(f"{name}: embedded {done}/{total} new texts ({elapsed:.0f} s)")
            state["next"] = done + every
    return report
