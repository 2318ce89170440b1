"""Embedding the post corpus with MiniLM through the warehouse cache, against the way it was embedded before.

The corpus is ~20k short posts (31 tokens on average, 92 at most) and embedding it is about a fifth of
`make run` on two cores, so how the texts reach the model matters:

- ``current``: :func:`~gwm_assets.sources.embedding_cache.embed_cached` into a fresh in-memory DuckDB with
  :func:`~gwm_model.nn.field_text.minilm_embedder`: texts sorted by length before they are cut into chunks
  (a batch pads to its longest text), the model run under ``torch.inference_mode``;
- ``arrival_order`` (the baseline, the code before): the same chunks of 512 in the corpus's own order, each
  sorted only within itself by sentence-transformers, under its default ``no_grad``.

Both embed the same ``GWM_BENCH_EMBED_TEXTS`` posts (default 1,536: the first of the corpus) with the same
loaded model; reported: median seconds over the repeats, texts per second, the ratio, and the largest
difference between the two results' vectors (they must agree: only the order and the autograd mode change).
"""

from __future__ import annotations

import os

import duckdb
import numpy as np
import torch

from bench.timing import median_seconds
from gwm_assets.sources.embedding_cache import embed_cached
from gwm_assets.sources.text_corpus import MINILM_MODEL, TRUMP_TWEETS, corpus_rows
from gwm_model.nn import field_text

CHUNK = 512  # embed_cached's batch of texts per call


def arrival_order(model, texts: list[str]) -> np.ndarray:
    out = []
    for start in range(0, len(texts), CHUNK):
        with torch.no_grad():
            out.append(model.encode(texts[start:start + CHUNK], batch_size=64, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=False))
    return np.concatenate(out).astype(np.float32)


def current(texts: list[str]) -> np.ndarray:
    with duckdb.connect(":memory:") as conn:
        vectors, computed = embed_cached(conn, texts, field_text.minilm_embedder(), MINILM_MODEL)
    assert computed == len(set(texts))
    return vectors


def run() -> dict[str, object]:
    n = int(os.environ.get("GWM_BENCH_EMBED_TEXTS", "1536"))
    rows, _ = corpus_rows(TRUMP_TWEETS, TRUMP_TWEETS.frame())
    texts = list(dict.fromkeys(r["title"] for r in rows))[:n]  # distinct: the cache embeds each text once
    field_text.minilm_embedder()(texts[:8])  # load the model and run it once, outside the timings
    model = field_text.minilm_model()
    repeats = int(os.environ.get("GWM_BENCH_EMBED_REPEATS", "3"))
    before = median_seconds(lambda: arrival_order(model, texts), repeats=repeats, warmup=0)
    now = median_seconds(lambda: current(texts), repeats=repeats, warmup=0)
    gap = float(np.abs(arrival_order(model, texts) - current(texts)).max())
    return {"texts": len(texts), "threads": torch.get_num_threads(),
            "arrival_order": {"seconds": round(before, 2), "texts_per_s": round(len(texts) / before, 1)},
            "current": {"seconds": round(now, 2), "texts_per_s": round(len(texts) / now, 1)},
            "speedup_vs_arrival_order": round(before / now, 3), "max_abs_difference": gap}
