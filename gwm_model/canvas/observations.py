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
    frame = pl.from_arrow(observations) if isinstance(observations, pa.Table) else observations
    if not isinstance(frame, pl.DataFrame):
        raise TypeError(f"observations must be a pyarrow Table or polars DataFrame, not {type(observations)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"observations lack column(s) {missing}; they have {frame.columns}. "
                         f"Fix: select {list(REQUIRED_COLUMNS)} (plus vector, source_key) from the observations table")
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
    bad = frame.filter(pl.col("ts").is_null() | pl.col("available_at").is_null())
    if bad.height:
        row = bad.row(0, named=True)
        raise ValueError(f"{bad.height} observation(s) have no ts or available_at, e.g. {row}. "
                         "Fix: every observation needs the date it describes and when it was published")
    return frame


def first_published(frame: pl.DataFrame, source_order: Sequence[str] = ()) -> pl.DataFrame:
    """One row per (field_path, ts) by the first-published rule above, sorted by field_path then ts."""
    rank = {source: i for i, source in enumerate(source_order)}
    ranked = frame.with_columns(
        pl.col("source").replace_strict(rank, default=len(rank), return_dtype=pl.Int64).alias("_source_rank"))
    ordered = ranked.sort(["field_path", "ts", "available_at", "_source_rank", "source", "source_key"])
    return ordered.unique(subset=["field_path", "ts"], keep="first", maintain_order=True).drop("_source_rank")


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
