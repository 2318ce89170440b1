"""The observations contract: read the warehouse's long table and keep one row per (field, date).

Input columns: ``field_path`` (str), ``ts`` (date the value describes), ``available_at`` (when it
was published), ``value`` (float, first release), ``vector`` (list of floats or null), ``source`` and
``source_key`` (str). ``revised_value`` and other columns may be present and are ignored: a canvas
is built from first releases, the numbers that were actually known at ``available_at``.

Several sources may report the same field for the same date. The rule that picks one is
**first published wins**: the row with the earliest ``available_at``; equal times go to the source
listed first in the caller's ``source_order``, then to unlisted sources alphabetically, then to
the alphabetically first ``source_key``. Publication time comes first because it is the only rule
that is itself point in time: the row it picks from the full table is the row it picks from any
prefix of the table cut at a publication date, so a canvas built later never shows a value other
than the one a person would have used at the time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import pyarrow as pa

REQUIRED_COLUMNS = ("field_path", "ts", "available_at", "value", "source")
OPTIONAL_COLUMNS = {"vector": pl.List(pl.Float32), "source_key": pl.String}


def as_frame(observations: pa.Table | pl.DataFrame) -> pl.DataFrame:
    """The observations as a Polars frame with the contract's column types (``available_at`` naive UTC, µs)."""
    if not isinstance(observations, pa.Table | pl.DataFrame):
        raise TypeError(f"observations must be a pyarrow Table or polars DataFrame, not {type(observations)}")
    names = observations.column_names if isinstance(observations, pa.Table) else observations.columns
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"observations lack column(s) {missing}; they have {names}. "
                         f"Fix: select {list(REQUIRED_COLUMNS)} (plus vector, source_key) from the observations table")
    frame = _from_arrow(observations) if isinstance(observations, pa.Table) else observations
    for column, dtype in OPTIONAL_COLUMNS.items():
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=dtype).alias(column))
    available = pl.col("available_at")
    zone = getattr(frame.schema["available_at"], "time_zone", None)
    if zone is not None:
        available = available.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    frame = frame.select(
        pl.col("field_path").cast(pl.String),
        pl.col("ts").cast(pl.Date),
        available.cast(pl.Datetime("us")).alias("available_at"),
        pl.col("value").cast(pl.Float64),
        pl.col("vector").cast(pl.List(pl.Float32)),
        pl.col("source").cast(pl.String),
        pl.col("source_key").cast(pl.String).fill_null(""),
    )
    if frame["ts"].null_count() or frame["available_at"].null_count():
        bad = frame.filter(pl.col("ts").is_null() | pl.col("available_at").is_null())
        row = bad.row(0, named=True)
        raise ValueError(f"{bad.height} observation(s) have no ts or available_at, e.g. {row}. "
                         "Fix: every observation needs the date it describes and when it was published")
    return frame


def _from_arrow(table: pa.Table) -> pl.DataFrame:
    """The contract's columns of an Arrow table as Polars; strings go as Arrow string views, taken without a copy."""
    names = [c for c in table.column_names if c in REQUIRED_COLUMNS or c in OPTIONAL_COLUMNS]
    columns = [table[c].cast(pa.string_view()) if pa.types.is_string(table[c].type)
               or pa.types.is_large_string(table[c].type) else table[c] for c in names]
    return pl.from_arrow(pa.table(columns, names=names))


_TIE_BREAK = ["available_at", "_source_rank", "source", "source_key"]


def _ranked(frame: pl.DataFrame, source_order: Sequence[str]) -> pl.DataFrame:
    rank = {source: i for i, source in enumerate(source_order)}
    return frame.with_columns(
        pl.col("source").replace_strict(rank, default=len(rank), return_dtype=pl.Int64).alias("_source_rank"))


def first_published(frame: pl.DataFrame, source_order: Sequence[str] = ()) -> pl.DataFrame:
    """One row per (field_path, ts) by the first-published rule above, sorted by field_path then ts."""
    ordered = _ranked(frame, source_order).sort(["field_path", "ts", *_TIE_BREAK])
    return ordered.unique(subset=["field_path", "ts"], keep="first", maintain_order=True).drop("_source_rank")


def first_published_rows(frame: pl.DataFrame, key: np.ndarray, source_order: Sequence[str] = ()) -> np.ndarray:
    """Row numbers of ``frame`` that the first-published rule keeps, in ascending ``key`` order.

    ``key`` (int64, one per row) encodes a row's (field, date) so that sorting by it sorts by field then
    date; rows with a negative key are left out. Only rows that share a key with another row are compared
    by publication time and source (usually none), so the cost is one integer sort of the table.
    """
    inside = key >= 0
    rows = np.arange(key.size) if inside.all() else np.flatnonzero(inside)
    keys = key[rows]
    if keys.size > 1 and not (keys[1:] >= keys[:-1]).all():
        order = np.argsort(keys, kind="stable")
        rows, keys = rows[order], keys[order]
    same = keys[1:] == keys[:-1]
    if not same.any():
        return rows
    tied = np.zeros(keys.size, dtype=bool)
    tied[1:] = same
    tied[:-1] |= same
    candidates = frame[rows[tied]].select(_TIE_BREAK[0], *_TIE_BREAK[2:]).with_columns(
        pl.Series("_key", keys[tied]), pl.Series("_at", np.flatnonzero(tied)))
    winners = (_ranked(candidates, source_order).sort(["_key", *_TIE_BREAK])
               .unique(subset=["_key"], keep="first", maintain_order=True)["_at"].to_numpy())
    keep = ~tied
    keep[winners] = True
    return rows[keep]


def vector_matrix(vectors: pl.Series, path: str, width: int) -> np.ndarray:
    """A list column of equal-length vectors as an ``(n, width)`` float64 matrix; errors name the field."""
    lengths = vectors.list.len().to_numpy()
    wrong = np.flatnonzero(lengths != width)
    if wrong.size:
        raise ValueError(f"field '{path}' has a vector of length {int(lengths[wrong[0]])} where {width} slots "
                         f"are expected ({wrong.size} row(s)). Fix: declare vector_slots['{path}'] to match the "
                         "embedding size, or repair those rows")
    if vectors.len() == 0:
        return np.zeros((0, width))
    return vectors.explode().to_numpy().astype(np.float64).reshape(-1, width)


def vector_width(vectors: pl.Series, path: str) -> int | None:
    """The common length of a field's non-null vectors, or None when it has none."""
    lengths = vectors.drop_nulls().list.len().unique().to_list()
    if not lengths:
        return None
    if len(lengths) > 1:
        raise ValueError(f"field '{path}' has vectors of lengths {sorted(lengths)}. "
                         f"Fix: declare vector_slots['{path}'] and make every vector that long")
    return int(lengths[0])
