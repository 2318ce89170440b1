"""Train on several user data sets at once: one canvas per data set, one loader that mixes them by weight.

Each data set becomes a canvas of the same projection and layout (so a field sits at the same
positions whichever data set a sample comes from) on its own time axis, and is cut into windows.
In its samples only its declared inputs are visible, only its declared outputs are targets, and
the loss weights are its outputs' weights (0 elsewhere). The loader draws a data set with
probability proportional to its :attr:`DatasetSpec.weight`, then a window of it uniformly, however
many windows each data set has.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from gwm_model.canvas.build import build_canvas
from gwm_model.canvas.canvas import Canvas
from gwm_model.canvas.layout import CanvasLayout, pack_layout
from gwm_model.canvas.timeaxis import make_time_axis
from gwm_model.canvas.userdata import DatasetSpec, UserTable, date_range, spec_observations
from gwm_model.canvas.windows import CanvasWindows
from gwm_model.schema.projection import Projection

Source = tuple[DatasetSpec, UserTable]


def _projection_and_layout(bound: Any) -> tuple[Projection, CanvasLayout]:
    """Accept a :class:`Projection` or anything carrying ``projection`` and ``layout`` (a compiled canvas)."""
    if isinstance(bound, Projection):
        return bound, pack_layout(bound)
    return bound.projection, bound.layout


def _vector_widths(observations: Sequence[pl.DataFrame], names: Sequence[str]) -> dict[str, int]:
    """Per field, the vector length every data set agrees on."""
    widths: dict[str, tuple[int, str]] = {}
    for frame, name in zip(observations, names, strict=True):
        lengths = (frame.filter(pl.col("vector").is_not_null())
                   .group_by("field_path").agg(pl.col("vector").list.len().unique().alias("lengths")))
        for path, found in lengths.iter_rows():
            if len(found) > 1:
                raise ValueError(f"dataset '{name}' has vectors of lengths {sorted(found)} for '{path}'")
            seen = widths.setdefault(path, (found[0], name))
            if seen[0] != found[0]:
                raise ValueError(f"field '{path}' has {seen[0]}-d vectors in '{seen[1]}' but {found[0]}-d in '{name}'")
    return {path: width for path, (width, _) in widths.items()}


class HeterogeneousDataset(Dataset):
    """The windows of several user data sets, back to back; ``sample_weights`` mixes them by spec weight.

    ``train_end``: the last training date for every data set's normalisation; when None, each data
    set uses the step ``train_fraction`` of the way along its own axis.
    """

    def __init__(self, bound: Any, sources: Sequence[Source], context: int, horizon: int = 0,
                 train_end: dt.date | str | None = None, train_fraction: float = 0.8,
                 vector_slots: Mapping[str, int] | None = None) -> None:
        if not sources:
            raise ValueError("a heterogeneous dataset needs at least one (DatasetSpec, data) source")
        self.projection, self.layout = _projection_and_layout(bound)
        self.specs = [spec for spec, _ in sources]
        for spec in self.specs:
            for path in spec.keys().values():
                self.projection.field(path)  # raises naming the closest paths in the projection
        observations = [spec_observations(spec, data) for spec, data in sources]
        slots = {**_vector_widths(observations, [s.name for s in self.specs]), **(vector_slots or {})}
        paths = np.array(self.projection.paths)
        self.canvases: list[Canvas] = []
        self.parts: list[CanvasWindows] = []
        for index, (spec, frame) in enumerate(zip(self.specs, observations, strict=True)):
            axis = make_time_axis(*date_range(frame), spec.axis_frequency)
            end = train_end if train_end is not None else str(axis.starts[int(train_fraction * (len(axis) - 1))])
            canvas = build_canvas(frame, self.projection, axis, end, transforms=spec.transforms(), vector_slots=slots,
                                  layout=self.layout, data_version=f"user:{spec.name}")
            weights = np.zeros(len(paths), dtype=np.float32)
            for output in spec.output_specs:
                weights[self.projection.index_of[output.field_path]] = output.loss_weight
            windows = CanvasWindows(canvas, context, horizon, source=index, loss_weight=weights,
                                    input_fields=np.isin(paths, [s.field_path for s in spec.input_specs]),
                                    target_fields=np.isin(paths, [s.field_path for s in spec.output_specs]))
            if len(windows) == 0:
                raise ValueError(f"dataset '{spec.name}' has {len(axis)} {axis.frequency} steps, too few for one "
                                 f"window of {context}+{horizon}. Fix: a shorter context/horizon or more data")
            self.canvases.append(canvas)
            self.parts.append(windows)
        self.bounds = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.bounds[-1])

    def source_of(self, index: int) -> int:
        return int(np.searchsorted(self.bounds, index, side="right") - 1)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        source = self.source_of(index)
        return self.parts[source][index - int(self.bounds[source])]

    @property
    def source_weights(self) -> np.ndarray:
        """Each data set's share of draws: spec weights normalised to sum to 1."""
        weights = np.array([spec.weight for spec in self.specs], dtype=np.float64)
        return weights / weights.sum()

    def sample_weights(self) -> torch.Tensor:
        """Per-window draw weight: the data set's share spread evenly over its windows."""
        sizes = np.diff(self.bounds)
        return torch.from_numpy(np.repeat(self.source_weights / sizes, sizes))

    def _declared(self, attribute: str, specs: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for spec in self.specs:
            for item in getattr(spec, specs):
                value = getattr(item, attribute)
                if value is None:
                    continue
                first = found.setdefault(item.field_path, value)
                if first is not value and first != value:
                    raise ValueError(f"field '{item.field_path}' has different {attribute}s in different data sets")
        return found

    @property
    def semantic_types(self) -> dict[str, str]:
        """Field path -> the first data set's description of it (for semantic conditioning)."""
        out: dict[str, str] = {}
        for spec in self.specs:
            for item in [*spec.input_specs, *spec.output_specs]:
                out.setdefault(item.field_path, item.semantic_type)
        return out

    @property
    def encoders(self) -> dict[str, Any]:
        """Field path -> custom encoder declared by an input (for the trainer; conflicting ones raise)."""
        return self._declared("encoder", "input_specs")

    @property
    def decoders(self) -> dict[str, Any]:
        """Field path -> custom decoder declared by an output."""
        return self._declared("decoder", "output_specs")

    @property
    def losses(self) -> dict[str, Any]:
        """Field path -> loss (a name such as ``mse`` or a callable) declared by an output."""
        return self._declared("loss", "output_specs")


def build_mixed_dataloader(bound: Any, sources: Sequence[Source], batch_size: int = 32, *, context: int = 8,
                           horizon: int = 1, train_end: dt.date | str | None = None, num_samples: int | None = None,
                           seed: int | None = 0, num_workers: int = 0, drop_last: bool = False) -> DataLoader:
    """A loader over ``sources`` that draws data set ``i`` with probability ``weight_i / sum(weights)``.

    Draws are with replacement; an epoch is ``num_samples`` windows (default: all windows once in
    expectation). ``seed`` fixes the draw order (None: random). The dataset is ``loader.dataset``.
    """
    dataset = HeterogeneousDataset(bound, sources, context=context, horizon=horizon, train_end=train_end)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    sampler = WeightedRandomSampler(dataset.sample_weights(), num_samples=num_samples or len(dataset),
                                    replacement=True, generator=generator)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=drop_last)
