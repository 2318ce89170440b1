"""Build a :class:`WorldModelNet` for a canvas: its token plan, its fields' text embeddings and periods."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gwm_model.canvas.canvas import Canvas
from gwm_model.nn.field_text import Embedder, FieldEmbeddings
from gwm_model.nn.geometry import TokenPlan
from gwm_model.nn.model import ModelConfig, WorldModelNet
from gwm_model.schema.projection import Projection
from gwm_model.schema.spec import FieldSpec


def build_world_model(canvas: Canvas, fields_of: Projection | Mapping[str, FieldSpec], config: ModelConfig,
                      embeddings: FieldEmbeddings | Embedder | None = None,
                      active: Sequence[str] | None = None) -> WorldModelNet:
    """A fresh model for ``canvas``.

    ``fields_of``: the projection the canvas was built from (or path -> FieldSpec) for descriptions and
    periods. ``embeddings``: a :class:`FieldEmbeddings` cache (default: the on-disk cache for the
    canvas's schema hash) or a plain embedder. ``active``: the fields to give tokens (default: fields
    with data and their hubs, see :func:`gwm_model.nn.geometry.active_paths`).
    """
    specs = {f.path: f for f in fields_of.fields} if isinstance(fields_of, Projection) else dict(fields_of)
    plan = TokenPlan.from_canvas(canvas, config.value_channels, active)
    missing = [p for p in plan.fields if p not in specs]
    if missing:
        raise ValueError(f"no field specification for {missing[:5]}: pass the projection the canvas was built from")
    chosen = [specs[p] for p in plan.fields]
    if embeddings is None or not isinstance(embeddings, FieldEmbeddings):
        embeddings = FieldEmbeddings(canvas.schema_hash or "unversioned", embed=embeddings)
    text = embeddings(chosen)
    return WorldModelNet(config, plan, text, [s.period_days for s in chosen])
