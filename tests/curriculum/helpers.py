"""Shared pieces of the curriculum training tests: a tiny three-node curriculum on the synthetic world,
its canvases, and field embeddings from a deterministic stand-in for MiniLM cached in a temporary directory.

The curriculum: two tier-0 nodes on different field subsets (``rates``: the yield curve; ``markets``: the
equities and the two-year rate, so the two share one field row) and one tier-1 join of both that also
covers the macro inflation subtree, a field no parent has. Models are ``d_model`` 16 with one layer (the
join grows a second, zero-initialised), runs are a handful of steps, so a whole curriculum trains in a few
seconds on one CPU thread.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from gwm_model.canvas import build_canvas, make_time_axis
from gwm_model.canvas.canvas import Canvas
from gwm_model.curriculum import Curriculum, load_curriculum_text
from gwm_model.nn.field_text import TEXT_DIM, FieldEmbeddings
from gwm_model.schema import WorldSchema
from gwm_model.synthetic import synthetic_world

WEEKS = 160
TINY_CURRICULUM = """\
name: tiny
canvas: {frequency: weekly, start: 2000-01-03}
default_profile: tiny
profiles:
  tiny:
    model: {d_model: 16, n_heads: 2, n_layers: 1, n_loops: 1}
    train: {context: 6, horizon: 2, batch_size: 8, steps: 5, lr: 3.0e-3, warmup_steps: 1, patience: 100,
            val_fraction: 0.2, seed: 0, device: cpu, loggers: []}
    evaluation: {baselines: [persistence], max_anchors: 12}
    merge: {method: mean}
    trunk: {train: {steps: 4}}
    tiers: {1: {model: {n_layers: 2}}}
nodes:
  - {name: rates, tier: 0, include: [financial.yield_curves], data_sources: []}
  - {name: markets, tier: 0, include: [financial.equities, financial.yield_curves.two_year], data_sources: []}
  - name: join
    tier: 1
    include: [financial.yield_curves, financial.equities, country_us.macro.inflation]
    parents: [rates, markets]
    data_sources: []
"""
TIER0 = ("rates", "markets")
SHARED_FIELD = "financial.yield_curves.two_year"  # in both tier-0 canvases
FRESH_FIELDS = ("country_us.macro.inflation", "country_us.macro.inflation.core_cpi")  # only in the join


def fake_embed(texts: list[str]) -> np.ndarray:
    """Deterministic (across processes too) unit vectors standing in for MiniLM."""
    rows = [np.random.default_rng(int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")).normal(size=384)
            for t in texts]
    out = np.stack(rows) if rows else np.zeros((0, TEXT_DIM))
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def embeddings_in(directory: Path, schema: WorldSchema) -> FieldEmbeddings:
    """Field embeddings of ``schema`` from :func:`fake_embed`, cached under ``directory`` (never the user's home)."""
    return FieldEmbeddings(schema.schema_hash, directory, embed=fake_embed)


def tiny_curriculum(validation: bool = True) -> Curriculum:
    """``validation=False``: no validation split, so every node keeps the weights it trained to (with one, the
    selection may keep a node's starting weights after a few steps, and new data would not change them)."""
    text = TINY_CURRICULUM if validation else TINY_CURRICULUM.replace("val_fraction: 0.2", "val_fraction: 0.0")
    return load_curriculum_text(text, source="tiny.yaml")


@dataclass
class World:
    """The synthetic world's observations and a canvas per node (``seed`` changes the data)."""

    observations: pl.DataFrame
    canvases: dict[str, Canvas]


def node_canvas(schema: WorldSchema, curriculum: Curriculum, node: str, seed: int = 0, data_version: str = "v1",
                observations: pl.DataFrame | None = None) -> Canvas:
    """One node's canvas on the synthetic world of ``seed`` (or on ``observations``, on the same time axis)."""
    sw = synthetic_world(seed=seed, weeks=WEEKS)
    axis = make_time_axis(sw.start, sw.end, "weekly")
    return build_canvas(sw.observations if observations is None else observations,
                        curriculum[node].projection(schema), axis, sw.train_end, data_version=data_version)


def build_world(schema: WorldSchema, curriculum: Curriculum, seed: int = 0, data_version: str = "v1") -> World:
    sw = synthetic_world(seed=seed, weeks=WEEKS)
    axis = make_time_axis(sw.start, sw.end, "weekly")
    canvases = {name: build_canvas(sw.observations, curriculum[name].projection(schema), axis, sw.train_end,
                                   data_version=f"{data_version}-{name}")
                for name in curriculum.order()}
    return World(sw.observations, canvases)
