"""Text embeddings cached in the warehouse by text hash, so a text is embedded once per model.

``embedding_cache`` holds (text_hash, model, embedding). :func:`embed_cached` looks every text up,
embeds only the ones not seen before, in batches, stores each batch as soon as it is done (an
interrupted run keeps what it finished) and reports progress after every batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import duckdb
import numpy as np
import pyarrow as pa

from gwm_assets.sources.news import EMBED_DIM, Embedder, _to_list_array
from gwm_assets.warehouse.connection import registered

CACHE_DDL = f"""CREATE TABLE IF NOT EXISTS embedding_cache (
    text_hash VARCHAR NOT NULL, model VARCHAR NOT NULL, embedding FLOAT[{EMBED_DIM}] NOT NULL,
    PRIMARY KEY (text_hash, model))"""

Progress = Callable[[int, int], None]  # (texts embedded so far, texts to embed)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def embed_cached(conn: duckdb.DuckDBPyConnection, texts: Sequence[str], embedder: Embedder, model: str,
                 batch_size: int = 512, progress: Progress | None = None) -> tuple[np.ndarray, int]:
    """(n, 384) float32 embeddings of ``texts`` in order, and how many had to be computed now."""
    conn.execute(CACHE_DDL)
    hashes = [text_hash(t) for t in texts]
    wanted = pa.table({"text_hash": pa.array(sorted(set(hashes)), pa.string())})
    with registered(conn, "wanted_hashes", wanted):
        found = conn.execute("SELECT c.text_hash, c.embedding FROM embedding_cache c JOIN wanted_hashes w "
                             "USING (text_hash) WHERE c.model = ?", [model]).fetchall()
    known = {h: np.asarray(e, dtype=np.float32) for h, e in found}
    todo_index = {}
    for i, h in enumerate(hashes):
        if h not in known and h not in todo_index:
            todo_index[h] = i
    # shortest first: a batch pads to its longest text, so batches of similar lengths waste the least compute
    todo = sorted(todo_index.items(), key=lambda item: len(texts[item[1]]))
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        vectors = np.asarray(embedder([texts[i] for _, i in chunk]), dtype=np.float32)
        if vectors.shape != (len(chunk), EMBED_DIM):
            raise ValueError(f"embedder returned shape {vectors.shape}, expected ({len(chunk)}, {EMBED_DIM})")
        rows = pa.table({"text_hash": pa.array([h for h, _ in chunk], pa.string()),
                         "model": pa.array([model] * len(chunk), pa.string()),
                         "embedding": _to_list_array(vectors)})
        with registered(conn, "new_embeddings", rows):
            conn.execute("INSERT OR IGNORE INTO embedding_cache SELECT text_hash, model, embedding FROM new_embeddings")
        known.update({h: v for (h, _), v in zip(chunk, vectors, strict=True)})
        if progress is not None:
            progress(min(start + batch_size, len(todo)), len(todo))
    out = np.stack([known[h] for h in hashes]) if hashes else np.zeros((0, EMBED_DIM), dtype=np.float32)
    return out, len(todo)
