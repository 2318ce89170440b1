"""Build a :class:`Canvas` from observations: pick rows, transform each series, align by date, normalise.

For each field of the projection, in order:

1. one row per date by the first-published rule (:mod:`gwm_model.canvas.observations`);
2. the field's transform on its own dates (:mod:`gwm_model.canvas.transforms`);
3. as-of alignment: each observation goes to the time-axis step whose interval contains its ``ts``
   (a monthly value dated March 1st sits in the step containing March 1st, never at "row 3").
   Where several observations fall in one step (a daily series on a monthly axis) the step keeps
   the **last one by date**, with that observation's publication time. Steps with no observation
   stay absent: nothing is forward-filled, so presence marks exactly the cells with ground truth;
4. statistics fitted on the training cells (:mod:`gwm_model.canvas.normalise`) and applied.

Value slots: a scalar field takes one slot. A vector field (a news embedding) takes ``k`` slots,
``k`` taken from ``vector_slots`` when the caller declares it, else from the length of the field's
vectors in the data. Declaring it is the stable choice: an inferred width depends on the data, a
declared one does not (a field with no data yet still gets its slots). Rows with no content (a
non-finite scalar, a null vector for a vector field) are skipped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
import pyarrow as pa

from gwm_model.canvas.canvas import ABSENT, Canvas
from gwm_model.canvas.layout import CanvasLayout, pack_layout
from gwm_model.canvas.normalise import fit_norm_stats, training_cells
from gwm_model.canvas.observations import as_frame, first_published, vector_matrix, vector_width
from gwm_model.canvas.positions import slot_offsets
from gwm_model.canvas.timeaxis import TimeAxis
from gwm_model.canvas.transforms import Series, apply_transform
from gwm_model.schema.projection import Projection


def align(series: Series, axis: TimeAxis) -> tuple[np.ndarray, np.ndarray]:
    """Steps of ``series``' observations and a mask keeping the last observation of each step on the axis."""
    steps = axis.step_of(series.ts)
    on_axis = steps >= 0
    last_in_step = np.ones(len(series), dtype=bool)
    last_in_step[:-1] = steps[1:] != steps[:-1]  # series is sorted by ts, so steps are non-decreasing
    return steps, on_axis & last_in_step


def _field_series(rows: pl.DataFrame, path: str, width: int) -> Series:
    ts = rows["ts"].to_numpy().astype("datetime64[D]")
    available = rows["available_at"].to_numpy().astype("datetime64[us]").astype(np.int64)
    if width == 1:
        values = rows["value"].to_numpy().astype(np.float64)
        return Series(ts, available, values).keep(np.isfinite(values))
    has_vector = rows["vector"].is_not_null().to_numpy()
    rows = rows.filter(pl.Series(has_vector))
    return Series(ts[has_vector], available[has_vector], vector_matrix(rows["vector"], path, width))


def _slot_counts(projection: Projection, by_field: Mapping[str, pl.DataFrame],
                 vector_slots: Mapping[str, int]) -> tuple[int, ...]:
    unknown = sorted(set(vector_slots) - set(projection.paths))
    if unknown:
        raise ValueError(f"vector_slots names field(s) outside the projection: {unknown}")
    counts = []
    for path in projection.paths:
        if path in vector_slots:
            if int(vector_slots[path]) < 1:
                raise ValueError(f"vector_slots['{path}'] = {vector_slots[path]}; a field needs at least one slot")
            counts.append(int(vector_slots[path]))
        elif path in by_field:
            counts.append(vector_width(by_field[path]["vector"], path) or 1)
        else:
            counts.append(1)
    return tuple(counts)


def build_canvas(observations: pa.Table | pl.DataFrame, projection: Projection, axis: TimeAxis,
                 train_end: dt.date | str, *, transforms: Mapping[str, str] | None = None,
                 vector_slots: Mapping[str, int] | None = None, source_order: Sequence[str] = (),
                 loss_weights: Mapping[str, float] | None = None, layout: CanvasLayout | None = None,
                 data_version: str = "", schema_hash: str | None = None) -> Canvas:
    """Lay ``observations`` for ``projection``'s fields on ``axis``.

    ``train_end``: last date of the training period (normalisation is fitted on it). ``transforms``:
    field path -> transform name (default ``level``). ``vector_slots``: field path -> slots of a
    vector field. ``source_order``: sources to prefer when two publish the same cell at the same
    time. ``loss_weights``: per-field overrides of the schema's effective loss weight. ``layout``:
    a layout of exactly the projection's fields (default: :func:`pack_layout` of the projection).
    ``schema_hash`` defaults to the projection's. Observations of fields outside the projection
    are ignored.
    """
    transforms = {p: t for p, t in (transforms or {}).items() if t != "level"}
    loss_weights = dict(loss_weights or {})
    for what, names in (("transforms", transforms), ("loss_weights", loss_weights)):
        outside = sorted(set(names) - set(projection.paths))
        if outside:
            raise ValueError(f"{what} names field(s) outside the projection: {outside}")
    layout = layout or pack_layout(projection)
    if layout.paths != projection.paths:
        raise ValueError("the layout's fields differ from the projection's. Fix: pack_layout(projection)")

    frame = first_published(as_frame(observations).filter(pl.col("field_path").is_in(list(projection.paths))),
                            source_order)
    by_field = {key[0]: rows for key, rows in frame.partition_by("field_path", as_dict=True).items()}
    slots = _slot_counts(projection, by_field, vector_slots or {})
    offsets = slot_offsets(slots)

    T, F = len(axis), len(projection.paths)
    raw = np.zeros((T, int(offsets[-1])), dtype=np.float64)
    presence = np.zeros((T, F), dtype=bool)
    available = np.full((T, F), ABSENT, dtype=np.int64)
    cell_ts = np.full((T, F), np.datetime64("NaT"), dtype="datetime64[D]")
    for i, path in enumerate(projection.paths):
        if path not in by_field:
            continue
        series = apply_transform(_field_series(by_field[path], path, slots[i]), transforms.get(path, "level"), path)
        steps, keep = align(series, axis)
        rows = steps[keep]
        raw[rows, offsets[i]:offsets[i + 1]] = series.values[keep].reshape(rows.size, slots[i])
        presence[rows, i] = True
        available[rows, i] = series.available_us[keep]
        cell_ts[rows, i] = series.ts[keep]

    stats = fit_norm_stats(raw, projection.paths, slots, training_cells(presence, cell_ts, available, train_end),
                           train_end)
    values = stats.apply(raw, projection.paths, slots)
    values[~presence[:, np.repeat(np.arange(F), slots)]] = 0.0
    weights = np.array([loss_weights.get(f.path, f.effective_loss_weight) for f in projection.fields],
                       dtype=np.float32)
    return Canvas(layout=layout, axis=axis, slots=slots, values=values.astype(np.float32), presence=presence,
                  available_us=available, loss_weight=weights, stats=stats, transforms=transforms,
                  data_version=data_version, schema_hash=schema_hash or projection.schema_hash)
