"""Canvases: where each field sits on the (H, W) grid, which fields attend to which, and the tensors
built from observations on a time axis (values, presence, availability, normalisation).

May import :mod:`gwm_model.schema` only.

The torch-facing parts (``CanvasWindows``, the user-data ``HeterogeneousDataset`` and
``build_mixed_dataloader``) are imported on first use, so importing the package stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any

from gwm_model.canvas.build import align, build_canvas
from gwm_model.canvas.canvas import ABSENT, Canvas
from gwm_model.canvas.connectivity import Connectivity
from gwm_model.canvas.layout import CanvasLayout, Placement, pack_layout
from gwm_model.canvas.normalise import NormStats, fit_norm_stats
from gwm_model.canvas.positions import SlotPositions
from gwm_model.canvas.timeaxis import FREQUENCIES, TimeAxis, base_frequency, make_time_axis
from gwm_model.canvas.transforms import TRANSFORMS, Series, apply_transform
from gwm_model.canvas.userdata import DatasetSpec, InputSpec, OutputSpec, spec_observations
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


_TORCH_EXPORTS = {"CanvasWindows": "gwm_model.canvas.windows", "HeterogeneousDataset": "gwm_model.canvas.mixed",
                  "build_mixed_dataloader": "gwm_model.canvas.mixed"}


def __getattr__(name: str) -> Any:
    if name in _TORCH_EXPORTS:
        return getattr(import_module(_TORCH_EXPORTS[name]), name)
    raise AttributeError(f"module 'gwm_model.canvas' has no attribute '{name}'")


__all__ = [
    "ABSENT", "FREQUENCIES", "TRANSFORMS", "Canvas", "CanvasLayout", "CanvasWindows", "CompiledCanvas",
    "Connectivity", "DatasetSpec", "HeterogeneousDataset", "InputSpec", "NormStats", "OutputSpec", "Placement",
    "Series", "SlotPositions", "TimeAxis", "align", "apply_transform", "base_frequency", "build_canvas",
    "build_mixed_dataloader", "compile_canvas", "fit_norm_stats", "make_time_axis", "pack_layout",
    "spec_observations",
]
