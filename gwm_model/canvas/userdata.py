"""Bring your own data: declare what a table's columns mean in world terms, and turn it into observations.

A user data set is a table with a date column and one column per key (nulls where a series has no
value that day; a list column holds vectors such as embeddings). A :class:`DatasetSpec` says which
keys feed the model (:class:`InputSpec`) and which it must predict (:class:`OutputSpec`), each tied
to a world field path. A key may be both. Everything declared is used: transform, frequency hint
and release lag shape the canvas; loss weights, semantic types and the optional encoder, decoder
and loss travel with the dataset for the trainer (see :class:`HeterogeneousDataset`).

Rows are matched by their date, never by position: the converter emits one observation per
non-null (for scalars also non-NaN) cell, with the row's date as ``ts`` and ``ts + release_lag_days``
as its publication time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

from gwm_model.canvas.timeaxis import FREQUENCIES
from gwm_model.canvas.transforms import TRANSFORMS

UserTable = pa.Table | pl.DataFrame | Mapping[str, Sequence[Any]]


@dataclass(frozen=True)
class InputSpec:
    """A column the model reads. ``frequency``: the series' native cadence (an axis frequency name);
    ``release_lag_days``: how long after its date a value is published; ``encoder``: an optional
    custom encoder for this field, handed to the trainer."""

    key: str
    semantic_type: str
    field_path: str
    transform: str = "level"
    frequency: str | None = None
    release_lag_days: float = 0.0
    encoder: Any | None = None


@dataclass(frozen=True)
class OutputSpec:
    """A column the model predicts, with its loss weight and optional decoder and loss (name or callable).
    ``transform`` matters only for a key that is not also an input."""

    key: str
    semantic_type: str
    field_path: str
    loss_weight: float = 1.0
    decoder: Any | None = None
    loss: str | Callable[..., Any] = "mse"
    transform: str = "level"


@dataclass(frozen=True)
class DatasetSpec:
    """One user data set: its name, inputs, outputs and sampling ``weight`` in a mixed loader.
    ``frequency``: the canvas's time-axis frequency (default: the fastest input frequency hint, else
    daily). ``date_column``: the column holding each row's date."""

    name: str
    input_specs: Sequence[InputSpec] = field(default_factory=tuple)
    output_specs: Sequence[OutputSpec] = field(default_factory=tuple)
    description: str = ""
    weight: float = 1.0
    frequency: str | None = None
    date_column: str = "date"

    def __post_init__(self) -> None:
        if not self.input_specs and not self.output_specs:
            raise ValueError(f"dataset '{self.name}' declares no inputs or outputs")
        if not self.weight > 0:
            raise ValueError(f"dataset '{self.name}' has sampling weight {self.weight}. Fix: use a weight > 0")
        for spec in [*self.input_specs, *self.output_specs]:
            if spec.transform not in TRANSFORMS:
                raise ValueError(f"dataset '{self.name}', key '{spec.key}': unknown transform '{spec.transform}'. "
                                 f"Fix: use one of {', '.join(TRANSFORMS)}")
        for frequency in [self.frequency, *(s.frequency for s in self.input_specs)]:
            if frequency is not None and frequency not in FREQUENCIES:
                raise ValueError(f"dataset '{self.name}': unknown frequency '{frequency}'. "
                                 f"Fix: use one of {', '.join(FREQUENCIES)}")
        for kind, specs in (("input", self.input_specs), ("output", self.output_specs)):
            keys = [s.key for s in specs]
            repeated = sorted({k for k in keys if keys.count(k) > 1})
            if repeated:
                raise ValueError(f"dataset '{self.name}' declares {kind} key(s) {repeated} more than once")
        path_of: dict[str, str] = {}
        key_of: dict[str, str] = {}
        for spec in [*self.input_specs, *self.output_specs]:
            if path_of.setdefault(spec.key, spec.field_path) != spec.field_path:
                raise ValueError(f"dataset '{self.name}' maps key '{spec.key}' to two fields, "
                                 f"'{path_of[spec.key]}' and '{spec.field_path}'. Fix: one field per key")
            if key_of.setdefault(spec.field_path, spec.key) != spec.key:
                raise ValueError(f"dataset '{self.name}' maps keys '{key_of[spec.field_path]}' and '{spec.key}' "
                                 f"to the same field '{spec.field_path}'. Fix: one key per field")

    @property
    def axis_frequency(self) -> str:
        if self.frequency:
            return self.frequency
        hints = [s.frequency for s in self.input_specs if s.frequency]
        return min(hints, key=FREQUENCIES.index) if hints else "daily"

    def keys(self) -> dict[str, str]:
        """Column key -> field path, inputs first."""
        return {s.key: s.field_path for s in [*self.input_specs, *self.output_specs]}

    def transforms(self) -> dict[str, str]:
        """Field path -> transform; an input's transform wins over an output's for a shared key."""
        out = {s.field_path: s.transform for s in self.output_specs}
        out.update({s.field_path: s.transform for s in self.input_specs})
        return out


def _as_frame(data: UserTable, spec: DatasetSpec) -> pl.DataFrame:
    if isinstance(data, pa.Table):
        frame = pl.from_arrow(data)
    elif isinstance(data, pl.DataFrame):
        frame = data
    else:
        frame = pl.DataFrame(dict(data))
    missing = [c for c in [spec.date_column, *spec.keys()] if c not in frame.columns]
    if missing:
        raise ValueError(f"dataset '{spec.name}' has no column(s) {missing} (columns: {frame.columns}). "
                         f"Fix: rename the columns or the spec keys")
    return frame


def spec_observations(spec: DatasetSpec, data: UserTable) -> pl.DataFrame:
    """``data`` as long observations (the warehouse contract), one row per non-null cell, source = spec name."""
    frame = _as_frame(data, spec)
    date = pl.col(spec.date_column).cast(pl.Date)
    lags = {s.key: s.release_lag_days for s in spec.input_specs}
    parts = []
    for key, path in spec.keys().items():
        column = frame.schema[key]
        is_vector = isinstance(column, pl.List | pl.Array)
        value = pl.lit(float("nan")) if is_vector else pl.col(key).cast(pl.Float64)
        vector = pl.col(key).cast(pl.List(pl.Float32)) if is_vector else pl.lit(None, dtype=pl.List(pl.Float32))
        has_value = pl.col(key).is_not_null() if is_vector else value.is_finite()  # NaN counts as missing
        parts.append(frame.filter(has_value & pl.col(spec.date_column).is_not_null()).select(
            pl.lit(path).alias("field_path"),
            date.alias("ts"),
            (date.cast(pl.Datetime("us")) + pl.duration(microseconds=round(lags.get(key, 0.0) * 86_400e6)))
            .alias("available_at"),
            value.alias("value"),
            vector.alias("vector"),
            pl.lit(spec.name).alias("source"),
            pl.lit(key).alias("source_key"),
        ))
    return pl.concat(parts)


def date_range(observations: pl.DataFrame) -> tuple[dt.date, dt.date]:
    """First and last ``ts`` of some observations."""
    if observations.height == 0:
        raise ValueError("no observations: every column of the data set is empty")
    return observations["ts"].min(), observations["ts"].max()
