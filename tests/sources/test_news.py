"""Offline tests for the news source: feeds faked with ``responses``, a hash embedder, one real MiniLM load."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone

import duckdb
import numpy as np
import pyarrow as pa
import pytest
import requests
import responses

from gwm_assets.sources import news
from gwm_assets.sources.base import SourceError

FED_URL = "https://www.federalreserve.gov/feeds/press_all.xml"
ATOM_URL = "https://example.org/feeds/releases.atom"

FED_RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss xmlns:a10="http://www.w3.org/2005/Atom" version="2.0">
  <channel>
    <title>FRB: Press Release - All</title>
    <link>https://www.federalreserve.gov/feeds/press_all.xml</link>
    <description>Federal Reserve Board - All Press Releases</description>
    <language>en</language>
    <a10:link rel="self" type="application/rss+xml" href="https://www.federalreserve.gov/feeds/press_all.xml" />
    <item>
      <guid isPermaLink="true">https://www.federalreserve.gov/newsevents/pressreleases/monetary20250115a.htm</guid>
      <link>https://www.federalreserve.gov/newsevents/pressreleases/monetary20250115a.htm</link>
      <category>Monetary Policy</category>
      <title>Federal Reserve issues FOMC statement</title>
      <description>&lt;p&gt;The FOMC decided to &lt;b&gt;maintain&lt;/b&gt; rates &amp;amp; QT.&lt;/p&gt;</description>
      <pubDate>Wed, 15 Jan 2025 14:00:00 -0500</pubDate>
    </item>
    <item>
      <link>https://www.federalreserve.gov/newsevents/pressreleases/bcreg20250116a.htm</link>
      <category>Banking and Consumer Regulatory Policy</category>
      <title><![CDATA[Agencies announce results of stress tests]]></title>
      <description></description>
      <pubDate>Thu, 16 Jan 2025 16:30:00 Z</pubDate>
    </item>
    <item>
      <guid isPermaLink="true">https://www.federalreserve.gov/newsevents/pressreleases/other20250117a.htm</guid>
      <link>https://www.federalreserve.gov/newsevents/pressreleases/other20250117a.htm</link>
      <title>Minutes of the Board's discount rate meetings</title>
      <description>Undated item.</description>
    </item>
  </channel>
</rss>
"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Economic releases</title>
  <id>urn:example:releases</id>
  <updated>2025-01-16T12:00:00Z</updated>
  <entry>
    <title type="html">GDP rose 2.3 percent in the fourth quarter</title>
    <link rel="alternate" type="text/html" href="https://example.org/releases/gdp-q4"/>
    <id>urn:example:release:gdp-q4</id>
    <published>2025-01-16T09:30:00+01:00</published>
    <updated>2025-01-16T10:00:00+01:00</updated>
    <summary type="html">&lt;p&gt;Real GDP increased at an annual rate of 2.3 percent.&lt;/p&gt;</summary>
  </entry>
  <entry>
    <title>Personal income and outlays, December</title>
    <link href="https://example.org/releases/pio-dec"/>
    <id>urn:example:release:pio-dec</id>
    <updated>2025-01-31T13:30:00Z</updated>
  </entry>
</feed>
"""


def fake_embedder(calls: list[list[str]] | None = None):
    """Deterministic unit vectors seeded by a hash of each text; records each batch."""

    def embed(texts: list[str]) -> np.ndarray:
        if calls is not None:
            calls.append(list(texts))
        rows = [np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)).normal(size=384)
                for t in texts]
        out = np.asarray(rows, dtype=np.float32).reshape(len(texts), 384)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    return embed


def client(feeds: dict[str, str], calls: list[list[str]] | None = None) -> news.NewsClient:
    return news.NewsClient(session=requests.Session(), feeds=feeds, embedder=fake_embedder(calls))


@pytest.fixture
def feeds():
    with responses.RequestsMock() as rsps:
        rsps.get(FED_URL, body=FED_RSS, content_type="application/rss+xml")
        rsps.get(ATOM_URL, body=ATOM, content_type="application/atom+xml")
        yield {"fed": FED_URL, "atom": ATOM_URL}


def test_constants_and_schema():
    assert news.SOURCE == "news" and news.RAW_TABLE == "raw_news"
    assert news.KEY_COLUMNS == ("feed", "item_id") and news.VALUE_COLUMNS == ("title", "summary")
    assert list(news.RAW_COLUMNS) == news.RAW_SCHEMA.names
    assert news.RAW_COLUMNS["embedding"] == "FLOAT[384]"
    assert all(url.startswith("https://") for url in news.FEEDS.values())


def test_parses_rss_and_atom(feeds):
    calls: list[list[str]] = []
    result = client(feeds, calls).fetch()
    t = result.table
    assert t.schema == news.RAW_SCHEMA
    rows = {r["title"]: r for r in t.to_pylist()}
    assert set(rows) == {"Federal Reserve issues FOMC statement", "Agencies announce results of stress tests",
                         "GDP rose 2.3 percent in the fourth quarter", "Personal income and outlays, December"}
    fomc = rows["Federal Reserve issues FOMC statement"]
    assert fomc["feed"] == "fed"
    assert fomc["published_at"] == datetime(2025, 1, 15, 19, 0)  # -0500 -> UTC, naive
    assert fomc["item_id"].endswith("monetary20250115a.htm")
    assert fomc["summary"] == "The FOMC decided to maintain rates & QT."
    stress = rows["Agencies announce results of stress tests"]
    assert stress["item_id"] == stress["link"]  # no guid -> link
    assert stress["published_at"] == datetime(2025, 1, 16, 16, 30) and stress["summary"] == ""
    gdp = rows["GDP rose 2.3 percent in the fourth quarter"]
    assert gdp["feed"] == "atom" and gdp["item_id"] == "urn:example:release:gdp-q4"
    assert gdp["link"] == "https://example.org/releases/gdp-q4"
    assert gdp["published_at"] == datetime(2025, 1, 16, 8, 30)  # published wins over updated
    pio = rows["Personal income and outlays, December"]
    assert pio["published_at"] == datetime(2025, 1, 31, 13, 30) and pio["link"].endswith("pio-dec")
    # one embedding batch, "title. summary" texts, unit vectors in a FLOAT[384] column
    assert len(calls) == 1 and len(calls[0]) == 4
    assert "Federal Reserve issues FOMC statement. The FOMC decided" in calls[0][0]
    assert "Agencies announce results of stress tests" in calls[0]
    emb = np.asarray(t.column("embedding").to_pylist(), dtype=np.float32)
    assert emb.shape == (4, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert duckdb.sql("select typeof(embedding) as t from t limit 1").fetchone()[0] == "FLOAT[384]"
    assert duckdb.sql("select typeof(published_at) from t limit 1").fetchone()[0] == "TIMESTAMP"


def test_rejects_name_the_feed(feeds):
    rejects = client(feeds).fetch().rejects
    assert len(rejects) == 1
    rej = rejects[0]
    assert rej.source == "news" and rej.source_key == "fed" and rej.ts is None
    assert "date" in rej.reason and rej.raw["title"] == "Minutes of the Board's discount rate meetings"
    assert rej.as_row()["source_key"] == "fed"


@responses.activate
def test_empty_title_rejected_and_sha1_fallback_and_dedup():
    body = b"""<rss version="2.0"><channel>
      <item><title>  </title><pubDate>Fri, 10 Jan 2025 08:30:00 GMT</pubDate></item>
      <item><title>Employment situation</title><pubDate>Fri, 10 Jan 2025 08:30:00 -0500</pubDate></item>
      <item><guid>g1</guid><title>First copy</title><pubDate>Fri, 10 Jan 2025 09:00:00 GMT</pubDate></item>
      <item><guid>g1</guid><title>Second copy</title><pubDate>Fri, 10 Jan 2025 10:00:00 GMT</pubDate></item>
    </channel></rss>"""
    responses.get("https://example.org/rss", body=body)
    result = client({"bls": "https://example.org/rss"}).fetch()
    assert [r.reason for r in result.rejects] == ["empty title"]
    assert result.rejects[0].ts == datetime(2025, 1, 10, 8, 30) and result.rejects[0].source_key == "bls"
    rows = result.table.to_pylist()
    assert [r["title"] for r in rows] == ["Employment situation", "First copy"]
    expected = hashlib.sha1(b"Employment situation|2025-01-10T13:30:00").hexdigest()
    assert rows[0]["item_id"] == expected and rows[0]["link"] == ""


def test_since_filter(feeds):
    t = client(feeds).fetch(since=datetime(2025, 1, 16, 8, 30)).table
    assert sorted(t.column("title").to_pylist()) == ["Agencies announce results of stress tests",
                                                      "GDP rose 2.3 percent in the fourth quarter",
                                                      "Personal income and outlays, December"]
    aware = datetime(2025, 1, 16, 12, 0, tzinfo=timezone(timedelta(hours=-5)))  # 17:00 UTC
    assert client(feeds).fetch(since=aware).table.column("title").to_pylist() == [
        "Personal income and outlays, December"]


@responses.activate
def test_nothing_left_gives_empty_table_without_embedding_call():
    responses.get(FED_URL, body=FED_RSS)
    calls: list[list[str]] = []
    result = client({"fed": FED_URL}, calls).fetch(since=datetime(2030, 1, 1))
    assert result.num_rows == 0 and result.table.schema == news.RAW_SCHEMA and calls == []


@responses.activate
def test_http_500_raises_source_error():
    responses.get(FED_URL, status=500, body="oops")
    with pytest.raises(SourceError, match="HTTP 500") as info:
        client({"fed": FED_URL}).fetch()
    assert info.value.source == "news" and info.value.series == "fed" and FED_URL in str(info.value)


@responses.activate
def test_connection_error_raises_source_error():
    responses.get(FED_URL, body=requests.ConnectionError("refused"))
    with pytest.raises(SourceError, match="failed") as info:
        client({"fed": FED_URL}).fetch()
    assert info.value.series == "fed"


@responses.activate
@pytest.mark.parametrize("body", [b"<rss><channel><item><title>cut off", b"<html><body>not a feed</body></html>"])
def test_malformed_or_foreign_xml_raises_source_error(body):
    responses.get(FED_URL, body=body)
    with pytest.raises(SourceError) as info:
        client({"fed": FED_URL}).fetch()
    assert info.value.series == "fed" and FED_URL in str(info.value)


def _table(stamps: list[datetime], vectors: np.ndarray, list_type: pa.DataType = news.EMBEDDING_TYPE) -> pa.Table:
    emb = pa.array([v.tolist() for v in vectors.astype(np.float32)], type=list_type)
    return pa.table({"published_at": pa.array(stamps, type=pa.timestamp("us")), "embedding": emb})


def test_daily_aggregate_counts_norm_direction():
    e = np.eye(384, dtype=np.float32)
    stamps = [datetime(2025, 1, 15, 23, 59), datetime(2025, 1, 15, 1, 0), datetime(2025, 1, 16, 0, 0),
              datetime(2025, 1, 15, 12, 0)]
    vectors = np.stack([e[0], e[1], e[2], e[0]])
    out = news.daily_aggregate(_table(stamps, vectors))
    assert out.schema == news.DAILY_SCHEMA
    assert out.column("day").to_pylist() == [date(2025, 1, 15), date(2025, 1, 16)]
    assert out.column("n_headlines").to_pylist() == [3, 1]
    assert out.column("first_published_at").to_pylist() == [datetime(2025, 1, 15, 1, 0), datetime(2025, 1, 16)]
    assert out.column("last_published_at").to_pylist() == [datetime(2025, 1, 15, 23, 59), datetime(2025, 1, 16)]
    means = np.asarray(out.column("mean_embedding").to_pylist())
    assert np.allclose(np.linalg.norm(means, axis=1), 1, atol=1e-6)
    expected = (2 * e[0] + e[1]) / np.linalg.norm(2 * e[0] + e[1])
    assert np.allclose(means[0], expected, atol=1e-6) and np.allclose(means[1], e[2])
    assert duckdb.sql("select typeof(mean_embedding) from out limit 1").fetchone()[0] == "FLOAT[384]"


def test_daily_aggregate_on_fetched_table_and_variable_lists(feeds):
    t = client(feeds).fetch().table
    out = news.daily_aggregate(t)
    assert out.column("n_headlines").to_pylist() == [1, 2, 1] and sum(out.column("n_headlines").to_pylist()) == 4
    var = pa.list_(pa.float32())
    out_var = news.daily_aggregate(t.set_column(6, "embedding", t.column("embedding").cast(var)))
    assert out_var.schema.field("mean_embedding").type == var
    assert np.allclose(out_var.column("mean_embedding").to_pylist(), out.column("mean_embedding").to_pylist())
    assert news.daily_aggregate(t.slice(0, 0)).num_rows == 0


def test_module_import_does_not_load_torch():
    code = "import sys, gwm_assets.sources.news; assert 'torch' not in sys.modules; assert 'sentence_transformers' " \
           "not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def minilm():
    return news.minilm_embedder()


def test_real_minilm_embedder(minilm):
    vecs = minilm(["Federal Reserve raises interest rates by a quarter point",
                   "ECB cuts its key policy rate to fight slowing inflation",
                   "Local bakery wins award for best sourdough bread"])
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    sim = vecs @ vecs.T
    assert sim[0, 1] > sim[0, 2] and sim[0, 1] > sim[1, 2]
    from gwm_model.nn import field_text

    model = field_text.minilm_model()
    assert model is not None
    news.minilm_embedder()
    assert field_text.minilm_model() is model  # loaded once per process, shared with the field embeddings
    assert minilm([]).shape == (0, 384)
