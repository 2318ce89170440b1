"""News: dated headlines from public RSS 2.0 / Atom feeds, embedded with MiniLM, aggregated per day.

Each feed item becomes one row of ``raw_news`` with a 384-dim unit-length sentence embedding of
"title. summary". Items without a parseable date or without a title are rejected, never dropped
silently. :func:`daily_aggregate` turns the rows into one mean headline embedding per UTC day.
"""

from __future__ import annotations

import hashlib
import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import requests

from gwm_assets.sources.base import FetchResult, Reject, SourceError
from gwm_model.nn.field_text import minilm_embedder

SOURCE = "news"
RAW_TABLE = "raw_news"
EMBED_DIM = 384

#: Public, keyless feeds. BLS is left out: bls.gov answers 403 to non-browser clients.
FEEDS: dict[str, str] = {
    "fed_press_all": "https://www.federalreserve.gov/feeds/press_all.xml",
    "fed_press_monetary": "https://www.federalreserve.gov/feeds/press_monetary.xml",
    "ecb_press": "https://www.ecb.europa.eu/rss/press.html",
    "bea_releases": "https://apps.bea.gov/rss/rss.xml",
}

RAW_COLUMNS: dict[str, str] = {
    "feed": "VARCHAR",
    "item_id": "VARCHAR",
    "published_at": "TIMESTAMP",
    "title": "VARCHAR",
    "link": "VARCHAR",
    "summary": "VARCHAR",
    "embedding": f"FLOAT[{EMBED_DIM}]",
}
KEY_COLUMNS = ("feed", "item_id")
VALUE_COLUMNS = ("title", "summary")
DERIVED_COLUMNS = ("embedding",)  # an edited headline is stored with the embedding of its new text

#: Fixed-size list: DuckDB reads it as FLOAT[384] (a plain list_ would read as FLOAT[]).
EMBEDDING_TYPE = pa.list_(pa.float32(), EMBED_DIM)
RAW_SCHEMA = pa.schema([
    ("feed", pa.string()),
    ("item_id", pa.string()),
    ("published_at", pa.timestamp("us")),
    ("title", pa.string()),
    ("link", pa.string()),
    ("summary", pa.string()),
    ("embedding", EMBEDDING_TYPE),
])
DAILY_SCHEMA = pa.schema([
    ("day", pa.date32()),
    ("n_headlines", pa.int32()),
    ("mean_embedding", EMBEDDING_TYPE),
    ("first_published_at", pa.timestamp("us")),
    ("last_published_at", pa.timestamp("us")),
])

Embedder = Callable[[list[str]], np.ndarray]
_USER_AGENT = "gwm-feature-store/0.1 (economic research; python-requests)"
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def _local(tag: str) -> str:
    """Tag name without its ``{namespace}``."""
    return tag.rsplit("}", 1)[-1]


def _child(elem: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in elem if _local(c.tag) == name), None)


def _text(elem: ET.Element, name: str) -> str:
    child = _child(elem, name)
    return "".join(child.itertext()).strip() if child is not None else ""


def _plain(text: str) -> str:
    """Strip HTML tags and entities, collapse whitespace."""
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", text))).strip()


def _naive_utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo is not None else dt


def _parse_date(raw: str) -> datetime | None:
    """RFC 822 (RSS) or ISO 8601 (Atom, dc:date) to naive UTC; None when unparseable."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        return _naive_utc(parsedate_to_datetime(raw))
    except (TypeError, ValueError, IndexError):
        pass
    try:
        return _naive_utc(datetime.fromisoformat(raw.replace("Z", "+00:00")))
    except ValueError:
        return None


def _atom_link(entry: ET.Element) -> str:
    links = [c for c in entry if _local(c.tag) == "link"]
    for link in links:
        if link.get("rel", "alternate") == "alternate" and link.get("href"):
            return link.get("href", "").strip()
    return next((link.get("href", "").strip() for link in links if link.get("href")), "")


def _entries(root: ET.Element) -> Iterator[dict[str, str]]:
    """Yield raw fields of each RSS item / Atom entry (RSS 1.0 items too)."""
    kind = _local(root.tag)
    if kind == "feed":
        for entry in (e for e in root if _local(e.tag) == "entry"):
            yield {"title": _text(entry, "title"), "link": _atom_link(entry), "guid": _text(entry, "id"),
                   "date": _text(entry, "published") or _text(entry, "updated"),
                   "summary": _text(entry, "summary") or _text(entry, "content")}
    elif kind in ("rss", "RDF"):
        for item in (e for e in root.iter() if _local(e.tag) == "item"):
            yield {"title": _text(item, "title"), "link": _text(item, "link"), "guid": _text(item, "guid"),
                   "date": _text(item, "pubDate") or _text(item, "date"),
                   "summary": _text(item, "description") or _text(item, "encoded")}
    else:
        raise ValueError(f"root element <{kind}> is neither RSS nor Atom")


class NewsClient:
    """Fetches headlines from RSS/Atom feeds and embeds them."""

    def __init__(self, session: requests.Session | None = None, feeds: Mapping[str, str] = FEEDS,
                 timeout: float = 30, embedder: Embedder | None = None):
        self.session = session or requests.Session()
        self.feeds = dict(feeds)
        self.timeout = timeout
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = minilm_embedder()
        return self._embedder

    def _get_root(self, feed: str, url: str) -> ET.Element:
        try:
            resp = self.session.get(url, timeout=self.timeout, headers={"User-Agent": _USER_AGENT})
        except requests.RequestException as exc:
            raise SourceError(SOURCE, f"GET {url} failed: {exc}", series=feed) from exc
        if resp.status_code != 200:
            raise SourceError(SOURCE, f"GET {url} returned HTTP {resp.status_code}", series=feed)
        try:
            return ET.fromstring(resp.content)
        except ET.ParseError as exc:
            raise SourceError(SOURCE, f"malformed XML from {url}: {exc}", series=feed) from exc

    def _parse_feed(self, feed: str, url: str) -> tuple[list[dict[str, Any]], list[Reject]]:
        root = self._get_root(feed, url)
        try:
            raw_items = list(_entries(root))
        except ValueError as exc:
            raise SourceError(SOURCE, f"{url}: {exc}", series=feed) from exc
        rows: list[dict[str, Any]] = []
        rejects: list[Reject] = []
        for raw in raw_items:
            published = _parse_date(raw["date"])
            title = _plain(raw["title"])
            if published is None or not title:
                reason = ("empty title" if published is not None
                          else "no parseable publication date" + (f" {raw['date']!r}" if raw["date"] else ""))
                rejects.append(Reject(SOURCE, feed, published, reason, {**raw, "url": url}))
                continue
            item_id = raw["guid"] or raw["link"] or hashlib.sha1(
                f"{title}|{published.isoformat()}".encode()).hexdigest()
            rows.append({"feed": feed, "item_id": item_id, "published_at": published, "title": title,
                         "link": raw["link"], "summary": _plain(raw["summary"])})
        return rows, rejects

    def fetch(self, since: datetime | None = None) -> FetchResult:
        """Fetch every feed; keep items published at or after ``since`` (naive = UTC)."""
        cutoff = _naive_utc(since) if since is not None else None
        rows: list[dict[str, Any]] = []
        rejects: list[Reject] = []
        seen: set[tuple[str, str]] = set()
        for feed, url in self.feeds.items():
            feed_rows, feed_rejects = self._parse_feed(feed, url)
            rejects.extend(feed_rejects)
            for row in feed_rows:
                key = (row["feed"], row["item_id"])
                if key in seen or (cutoff is not None and row["published_at"] < cutoff):
                    continue
                seen.add(key)
                rows.append(row)
        vectors = self._embed([f"{r['title']}. {r['summary']}" if r["summary"] else r["title"] for r in rows])
        columns = {name: [r[name] for r in rows] for name in RAW_SCHEMA.names if name != "embedding"}
        columns["embedding"] = _to_list_array(vectors)
        return FetchResult(pa.table(columns, schema=RAW_SCHEMA), rejects)

    def _embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, EMBED_DIM), dtype=np.float32)
        vectors = np.asarray(self.embedder(texts), dtype=np.float32)
        if vectors.shape != (len(texts), EMBED_DIM):
            raise SourceError(SOURCE, f"embedder returned shape {vectors.shape}, expected ({len(texts)}, {EMBED_DIM})")
        return vectors


def _to_list_array(vectors: np.ndarray) -> pa.FixedSizeListArray:
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), type=pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, EMBED_DIM)


def _to_matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Embedding column (fixed-size or variable list) to a float32 (n, 384) matrix."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(arr) == 0:
        return np.zeros((0, EMBED_DIM), dtype=np.float32)
    return np.asarray(arr.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(arr), -1)


def daily_aggregate(table: pa.Table) -> pa.Table:
    """One row per UTC day: headline count, unit-length mean embedding, first/last publication time."""
    list_type = table.schema.field("embedding").type
    schema = DAILY_SCHEMA.set(DAILY_SCHEMA.get_field_index("mean_embedding"), pa.field("mean_embedding", list_type))
    if table.num_rows == 0:
        return schema.empty_table()
    published = table.column("published_at").cast(pa.timestamp("us"))
    days = pc.cast(published, pa.date32()).to_numpy().astype("datetime64[D]")
    stamps = published.to_numpy().astype("datetime64[us]").astype(np.int64)
    vectors = _to_matrix(table.column("embedding")).astype(np.float64)
    unique_days, group = np.unique(days, return_inverse=True)
    n = len(unique_days)
    counts = np.bincount(group, minlength=n)
    sums = np.zeros((n, vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, group, vectors)
    means = sums / counts[:, None]
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    means = np.divide(means, norms, out=np.zeros_like(means), where=norms > 0)
    first = np.full(n, np.iinfo(np.int64).max)
    last = np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(first, group, stamps)
    np.maximum.at(last, group, stamps)
    return pa.table({
        "day": pa.array(unique_days, type=pa.date32()),
        "n_headlines": pa.array(counts, type=pa.int32()),
        "mean_embedding": _to_list_array(means.astype(np.float32)).cast(list_type),
        "first_published_at": pa.array(first.astype("datetime64[us]"), type=pa.timestamp("us")),
        "last_published_at": pa.array(last.astype("datetime64[us]"), type=pa.timestamp("us")),
    }, schema=schema)
