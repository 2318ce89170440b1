"""``Canvas``: one node's data on its time axis, ready for sampling, and its files on disk.

Arrays (``T`` steps, ``F`` fields in layout order, ``S`` value slots):

- ``values`` ``(T, S)`` float32, normalised with ``stats``; 0 where a cell is absent;
- ``presence`` ``(T, F)`` bool, an observation dated inside that step exists;
- ``available_us`` ``(T, F)`` int64 microseconds since the epoch when the cell's value was published,
  :data:`ABSENT` (the largest int64, i.e. never) where it is absent.

On disk a canvas is a directory with ``tensors.safetensors`` (those three arrays and the per-field
loss weights) and ``manifest.json`` (fields, layout, time axis, transforms, normalisation
statistics, schema hash and the caller's data version).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from gwm_model.canvas.layout import CanvasLayout
from gwm_model.canvas.normalise import NormStats
from gwm_model.canvas.positions import SlotPositions, slot_offsets
from gwm_model.canvas.timeaxis import TimeAxis

ABSENT = np.iinfo(np.int64).max
FORMAT_VERSION = 1
TENSOR_FILE = "tensors.safetensors"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True, eq=False)
class Canvas:
    layout: CanvasLayout
    axis: TimeAxis
    slots: tuple[int, ...]
    values: np.ndarray
    presence: np.ndarray
    available_us: np.ndarray
    loss_weight: np.ndarray
    stats: NormStats
    transforms: dict[str, str] = field(default_factory=dict)
    data_version: str = ""
    schema_hash: str | None = None

    def __post_init__(self) -> None:
        T, F, S = len(self.axis), len(self.layout.placements), int(sum(self.slots))
        expected = {"values": (T, S), "presence": (T, F), "available_us": (T, F), "loss_weight": (F,)}
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"canvas {name} has shape {getattr(self, name).shape}, expected {shape}")

    @property
    def paths(self) -> tuple[str, ...]:
        return self.layout.paths

    @property
    def num_steps(self) -> int:
        return len(self.axis)

    @cached_property
    def offsets(self) -> np.ndarray:
        return slot_offsets(self.slots)

    @cached_property
    def slot_field(self) -> np.ndarray:
        """Field index of each value slot, ``(S,)``."""
        return np.repeat(np.arange(len(self.slots)), self.slots)

    @cached_property
    def positions(self) -> SlotPositions:
        return SlotPositions(self.layout, self.slots)

    @property
    def available_at(self) -> np.ndarray:
        """``available_us`` as ``datetime64[us]``, NaT where absent."""
        out = self.available_us.astype("datetime64[us]")
        out[~self.presence] = np.datetime64("NaT")
        return out

    def field_index(self, path: str) -> int:
        try:
            return self.paths.index(path)
        except ValueError:
            raise KeyError(f"'{path}' is not a field of this canvas") from None

    def field_values(self, path: str, raw: bool = True) -> np.ndarray:
        """``(T, k)`` values of one field, in its transformed units with ``raw`` (else normalised); NaN where absent."""
        i = self.field_index(path)
        block = self.values[:, self.offsets[i]:self.offsets[i + 1]].astype(np.float64)
        if raw:
            block = block * self.stats.std[path] + self.stats.mean[path]
        block[~self.presence[:, i]] = np.nan
        return block

    def to_positions(self, grid: bool = False) -> np.ndarray:
        """All values on canvas positions: ``(T, H*W[, C])`` or ``(T, H, W[, C])``."""
        return self.positions.scatter_values(self.values, grid=grid)

    def manifest(self) -> dict[str, object]:
        return {
            "format_version": FORMAT_VERSION,
            "tensors": TENSOR_FILE,
            "data_version": self.data_version,
            "schema_hash": self.schema_hash,
            "layout_hash": self.layout.layout_hash,
            "fields": [{"path": p, "slots": k, "loss_weight": float(w), "transform": self.transforms.get(p, "level"),
                        "observed_steps": int(n)}
                       for p, k, w, n in zip(self.paths, self.slots, self.loss_weight.tolist(),
                                             self.presence.sum(axis=0).tolist(), strict=True)],
            "fields_with_data": int(self.presence.any(axis=0).sum()),
            "fields_without_data": [p for p, seen in zip(self.paths, self.presence.any(axis=0).tolist(), strict=True)
                                    if not seen],
            "layout": self.layout.to_dict(),
            "time_axis": self.axis.to_dict(),
            "normalisation": self.stats.to_dict(),
        }

    def save(self, directory: str | Path) -> Path:
        """Write the canvas into ``directory`` (created if needed); returns the manifest path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({"values": np.ascontiguousarray(self.values, dtype=np.float32),
                   "presence": np.ascontiguousarray(self.presence, dtype=bool),
                   "available_us": np.ascontiguousarray(self.available_us, dtype=np.int64),
                   "loss_weight": np.ascontiguousarray(self.loss_weight, dtype=np.float32)},
                  str(directory / TENSOR_FILE))
        path = directory / MANIFEST_FILE
        path.write_text(json.dumps(self.manifest(), indent=1))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Canvas:
        directory = Path(directory)
        manifest = json.loads((directory / MANIFEST_FILE).read_text())
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{directory / MANIFEST_FILE} has canvas format {manifest.get('format_version')}, "
                             f"this code reads {FORMAT_VERSION}. Fix: rebuild the canvas")
        tensors = load_file(str(directory / manifest["tensors"]))
        layout = CanvasLayout.from_dict(manifest["layout"])
        fields = manifest["fields"]
        if [f["path"] for f in fields] != list(layout.paths):
            raise ValueError(f"{directory / MANIFEST_FILE}: field list and layout disagree")
        return cls(layout=layout, axis=TimeAxis.from_dict(manifest["time_axis"]),
                   slots=tuple(int(f["slots"]) for f in fields), values=tensors["values"],
                   presence=tensors["presence"], available_us=tensors["available_us"],
                   loss_weight=tensors["loss_weight"], stats=NormStats.from_dict(manifest["normalisation"]),
                   transforms={f["path"]: f["transform"] for f in fields if f["transform"] != "level"},
                   data_version=manifest["data_version"], schema_hash=manifest["schema_hash"])
