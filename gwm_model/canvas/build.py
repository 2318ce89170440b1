"""Build a :class:`Canvas` from observations: pick rows, transform each series, align by date, normalise.

For each field of the projection:

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

Cost: the one-slot fields without a transform (nearly all of a node) go through these steps
together, as arrays over all their rows (one integer sort of the table, one searchsorted, one
scatter into the grids); only transformed and vector fields are handled one at a time. The default
layout is packed once per set of fields and reused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import polars as pl
import pyarrow as pa

from gwm_model.canvas.canvas import ABSENT, Canvas
from gwm_model.canvas.layout import CanvasLayout, pack_layout
from gwm_model.canvas.normalise import NormStats, fit_rows, training_rows
from gwm_model.canvas.observations import as_frame, first_published_rows, vector_matrix
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


class _LayoutKey:
    """A projection, compared by what :func:`pack_layout` reads of it: its fields' paths and sizes, in order."""

    def __init__(self, projection: Projection) -> None:
        self.projection = projection
        self.key = tuple((f.path, f.h, f.w) for f in projection.fields)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _LayoutKey) and self.key == other.key


@lru_cache(maxsize=32)
def _packed(key: _LayoutKey) -> CanvasLayout:
    return pack_layout(key.projection)


def _default_layout(projection: Projection) -> CanvasLayout:
    """:func:`pack_layout` of ``projection``, packed once per set of fields (layouts are immutable)."""
    return _packed(_LayoutKey(projection))


@dataclass(frozen=True)
class _Rows:
    """The observations the first-published rule keeps for projection fields, sorted by field then date."""

    frame: pl.DataFrame  # the whole input, as_frame'd; ``index`` points into it
    index: np.ndarray
    field: np.ndarray  # projection index of each row
    ts: np.ndarray  # datetime64[D]
    available_us: np.ndarray
    value: np.ndarray
    vector_len: np.ndarray | None  # length of each row's vector, -1 where null; None when no row has one

    def bounds(self, num_fields: int) -> np.ndarray:
        """``F + 1`` boundaries: field ``i``'s rows are ``bounds[i]:bounds[i+1]``."""
        return np.searchsorted(self.field, np.arange(num_fields + 1))


def _field_index(paths: pl.Series, projection: Projection) -> np.ndarray:
    """Projection index of each row's ``field_path``, -1 outside the projection."""
    starts = np.flatnonzero((paths != paths.shift(1)).fill_null(True).to_numpy())
    if starts.size * 8 > paths.len():  # not in runs of one field (as a warehouse table is): hash every row
        codes = paths.cast(pl.Enum(projection.paths), strict=False).to_physical()
        return codes.cast(pl.Int64).fill_null(-1).to_numpy()
    index = projection.index_of
    ids = np.array([index.get(p, -1) for p in paths.gather(starts).to_list()], dtype=np.int64)
    return np.repeat(ids, np.diff(np.append(starts, paths.len())))


def _rows(observations: pa.Table | pl.DataFrame, projection: Projection, source_order: Sequence[str]) -> _Rows:
    frame = as_frame(observations)
    field = _field_index(frame["field_path"], projection)
    ts = frame["ts"].to_numpy().astype("datetime64[D]", copy=False)
    day = ts.view(np.int64)
    key = (field << 32) + (day - (day.min() if day.size else 0))
    key[field < 0] = -1
    index = first_published_rows(frame, key, source_order)
    vectors = frame["vector"]
    vector_len = None
    if vectors.null_count() < vectors.len():
        vector_len = vectors.list.len().fill_null(-1).to_numpy()[index]
    return _Rows(frame, index, field[index], ts[index],
                 frame["available_at"].to_numpy().astype("datetime64[us]", copy=False).view(np.int64)[index],
                 frame["value"].to_numpy().astype(np.float64, copy=False)[index], vector_len)


def _vector_widths(rows: _Rows, num_fields: int) -> dict[int, list[int]]:
    """Field index -> the distinct lengths of its non-null vectors, for fields that have any."""
    if rows.vector_len is None:
        return {}
    has = rows.vector_len >= 0
    pairs = np.unique(np.stack([rows.field[has], rows.vector_len[has]]), axis=1)
    widths: dict[int, list[int]] = {}
    for i, n in pairs.T.tolist():
        widths.setdefault(i, []).append(n)
    return widths


def _slot_counts(projection: Projection, widths: Mapping[int, list[int]],
                 vector_slots: Mapping[str, int]) -> tuple[int, ...]:
    unknown = sorted(set(vector_slots) - set(projection.paths))
    if unknown:
        raise ValueError(f"vector_slots names field(s) outside the projection: {unknown}")
    counts = [1] * len(projection.paths)
    for i, path in enumerate(projection.paths):
        if path in vector_slots:
            if int(vector_slots[path]) < 1:
                raise ValueError(f"vector_slots['{path}'] = {vector_slots[path]}; a field needs at least one slot")
            counts[i] = int(vector_slots[path])
        elif i in widths:
            if len(widths[i]) > 1:
                raise ValueError(f"field '{path}' has vectors of lengths {sorted(widths[i])}. "
                                 f"Fix: declare vector_slots['{path}'] and make every vector that long")
            counts[i] = widths[i][0]
    return tuple(counts)


def _field_series(rows: _Rows, lo: int, hi: int, path: str, width: int) -> Series:
    ts, available, values = rows.ts[lo:hi], rows.available_us[lo:hi], rows.value[lo:hi]
    if width == 1:
        return Series(ts, available, values).keep(np.isfinite(values))
    has_vector = rows.vector_len[lo:hi] >= 0 if rows.vector_len is not None else np.zeros(hi - lo, dtype=bool)
    vectors = rows.frame["vector"].gather(rows.index[lo:hi][has_vector])
    return Series(ts[has_vector], available[has_vector], vector_matrix(vectors, path, width))


def _last_in_step(field: np.ndarray, ts: np.ndarray, axis: TimeAxis) -> tuple[np.ndarray, np.ndarray]:
    """Steps of rows sorted by (field, ts) and a mask keeping each (field, step)'s last row on the axis."""
    steps = axis.step_of(ts)
    # a field's rows before and after the axis share cell field * (T + 1), which no on-axis row has
    cell = field * (len(axis) + 1) + (steps + 1)
    keep = steps >= 0
    keep[:-1] &= cell[1:] != cell[:-1]
    return steps, keep


def build_canvas(observations: pa.Table | pl.DataFrame, projection: Projection, axis: TimeAxis,
                 train_end: dt.date | str, *, transforms: Mapping[str, str] | None = None,
                 vector_slots: Mapping[str, int] | None = None, source_order: Sequence[str] = (),
                 loss_weights: Mapping[str, float] | None = None, layout: CanvasLayout | None = None,
                 data_version: str = "", schema_hash: str | None = None, stats: NormStats | None = None) -> Canvas:
    """Lay ``observations`` for ``projection``'s fields on ``axis``.

    ``train_end``: last date of the training period (normalisation is fitted on it). ``transforms``:
    field path -> transform name (default ``level``). ``vector_slots``: field path -> slots of a
    vector field. ``source_order``: sources to prefer when two publish the same cell at the same
    time. ``loss_weights``: per-field overrides of the schema's effective loss weight. ``layout``:
    a layout of exactly the projection's fields (default: :func:`pack_layout` of the projection).
    ``schema_hash`` defaults to the projection's. ``stats``: normalisation to apply instead of fitting
    it (new data encoded exactly as a model's training data was). Observations of fields outside the
    projection are ignored.
    """
    transforms = {p: t for p, t in (transforms or {}).items() if t != "level"}
    loss_weights = dict(loss_weights or {})
    for what, names in (("transforms", transforms), ("loss_weights", loss_weights)):
        outside = sorted(set(names) - set(projection.paths))
        if outside:
            raise ValueError(f"{what} names field(s) outside the projection: {outside}")
    layout = layout or _default_layout(projection)
    if layout.paths != projection.paths:
        raise ValueError("the layout's fields differ from the projection's. Fix: pack_layout(projection)")

    paths, F, T = projection.paths, len(projection.paths), len(axis)
    rows = _rows(observations, projection, source_order)
    slots = _slot_counts(projection, _vector_widths(rows, F), vector_slots or {})
    offsets = slot_offsets(slots)
    width = np.asarray(slots)

    # one-slot, untransformed fields (nearly all): one vectorised pass over their rows
    plain = (width == 1) & np.array([p not in transforms for p in paths], dtype=bool)
    field, ts, available_us, value = rows.field, rows.ts, rows.available_us, rows.value
    take = plain[field] & np.isfinite(value)
    if not take.all():
        field, ts, available_us, value = field[take], ts[take], available_us[take], value[take]
    steps, keep = _last_in_step(field, ts, axis)
    kept = np.flatnonzero(keep)
    field, ts, available_us, value, steps = field[kept], ts[kept], available_us[kept], value[kept], steps[kept]

    # the others (transformed, or vectors), one field at a time; one-slot results join the pass above
    scalars = [(field, steps, ts, available_us, value)]
    blocks: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    bounds = rows.bounds(F)
    for i in np.flatnonzero(~plain & (np.diff(bounds) > 0)).tolist():
        path = paths[i]
        series = apply_transform(_field_series(rows, bounds[i], bounds[i + 1], path, slots[i]),
                                 transforms.get(path, "level"), path)
        at, last = align(series, axis)
        at, series = at[last], series.keep(last)
        if slots[i] == 1:
            scalars.append((np.full(at.size, i), at, series.ts, series.available_us, series.values))
        else:
            blocks[i] = (at, series.ts, series.available_us, series.values.reshape(-1, slots[i]))
    if len(scalars) > 1:
        field, steps, ts, available_us, value = (np.concatenate(column) for column in zip(*scalars, strict=True))
        order = np.argsort(field, kind="stable")
        field, steps, ts, available_us, value = field[order], steps[order], ts[order], available_us[order], value[order]

    if stats is None:
        train = training_rows(ts, available_us, train_end)
        mean, std, count = fit_rows(len(paths), field[train], value[train],
                                    {i: b[3][training_rows(b[1], b[2], train_end)] for i, b in blocks.items()})
        stats = NormStats.of_arrays(paths, mean, std, count, train_end)
    else:
        absent = [p for p in paths if p not in stats.mean]
        if absent:
            raise ValueError(f"the given normalisation has no statistics for {absent[:5]}")
        mean = np.array([stats.mean[p] for p in paths])
        std = np.array([stats.std[p] for p in paths])

    values = np.zeros((T, int(offsets[-1])), dtype=np.float32)
    presence = np.zeros((T, F), dtype=bool)
    available = np.full((T, F), ABSENT, dtype=np.int64)
    values[steps, offsets[field]] = (value - mean[field]) / std[field]
    presence[steps, field] = True
    available[steps, field] = available_us
    for i, (at, _, published, block) in blocks.items():
        values[at, offsets[i]:offsets[i + 1]] = (block - mean[i]) / std[i]
        presence[at, i] = True
        available[at, i] = published
    weights = np.array([loss_weights.get(f.path, f.effective_loss_weight) for f in projection.fields],
                       dtype=np.float32)
    return Canvas(layout=layout, axis=axis, slots=slots, values=values, presence=presence,
                  available_us=available, loss_weight=weights, stats=stats, transforms=transforms,
                  data_version=data_version, schema_hash=schema_hash or projection.schema_hash)
