"""Canvas geometry: where each field sits on the (H, W) grid and which fields attend to which."""

from __future__ import annotations

from dataclasses import dataclass

from gwm_model.canvas.connectivity import Connectivity
from gwm_model.canvas.layout import CanvasLayout, Placement, pack_layout
from gwm_model.schema.projection import Projection


@dataclass(frozen=True)
class CompiledCanvas:
    """A projection with its layout and connectivity: everything a model needs about geometry."""

    projection: Projection
    layout: CanvasLayout
    connectivity: Connectivity


def compile_canvas(projection: Projection, H: int | None = None, W: int | None = None) -> CompiledCanvas:
    layout = pack_layout(projection, H=H, W=W)
    return CompiledCanvas(projection, layout, Connectivity.from_projection(projection))


__all__ = ["CanvasLayout", "CompiledCanvas", "Connectivity", "Placement", "compile_canvas", "pack_layout"]
