"""What ``WorldModel.observe`` accepts as observations, turned into one pyarrow Table.

People hold the warehouse's observations in many shapes; every one of these is read the same way:

- a pyarrow ``Table`` or ``RecordBatchReader`` (DuckDB's ``execute(...).arrow()`` returns a reader);
- a pandas or polars ``DataFrame`` (``.df()`` / ``.pl()``);
- a DuckDB relation (``conn.sql("select ...")``) or a connection holding a result
  (``conn.execute("select ...")``), read through the Arrow stream interface;
- any other object that speaks the Arrow PyCapsule stream protocol (``__arrow_c_stream__``);
- a path to the warehouse's DuckDB file: its ``observations`` table is read read-only.

The frame must hold the contract's columns (:data:`gwm_model.canvas.observations.REQUIRED_COLUMNS`);
one that lacks any is refused with the missing names and the columns it needs.

Reading a warehouse file is the one place ``gwm_model`` opens DuckDB (an exception the ``pure-model``
contract in ``pyproject.toml`` names): a single read-only query. The locking, waiting and retrying
around the warehouse belong to ``gwm_assets.warehouse``; a file a running materialization holds is
refused here with that advice.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from gwm_model.canvas.observations import OPTIONAL_COLUMNS, REQUIRED_COLUMNS

WAREHOUSE_COLUMNS = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)


class ObservationsInputError(ValueError):
    """Observations in a shape or with columns ``observe`` cannot read; the message says what it needs."""


def _accepted() -> str:
    return ("a pyarrow Table or RecordBatchReader, a pandas or polars DataFrame, a DuckDB relation or result, or "
            "the path of a warehouse DuckDB file")


def read_warehouse_observations(path: str | os.PathLike) -> pa.Table:
    """The ``observations`` table of the DuckDB file at ``path``, read read-only."""
    import duckdb

    path = Path(path)
    if not path.is_file():
        raise ObservationsInputError(f"no warehouse file at {path}. Fix: pass the DuckDB file (e.g. "
                                     "warehouse/gwm.duckdb) after `make run`, or a frame of its observations")
    try:
        conn = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as exc:
        raise ObservationsInputError(f"cannot open {path} read-only ({exc}); a running materialization may hold "
                                     "it. Fix: wait for it, or read the Parquet export "
                                     "(`gwm warehouse export DIR`) and pass a frame") from exc
    try:
        tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "observations" not in tables:
            raise ObservationsInputError(f"{path} has no observations table. Fix: materialize `observations` "
                                         "(make run)")
        return conn.execute(f"SELECT {', '.join(WAREHOUSE_COLUMNS)} FROM observations").to_arrow_table()
    finally:
        conn.close()


def _to_arrow(data: object) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatchReader):
        return data.read_all()
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, str | os.PathLike):
        return read_warehouse_observations(data)
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False)
    if module == "polars":
        return data.to_arrow()
    if hasattr(data, "__arrow_c_stream__"):  # a DuckDB relation, and any Arrow PyCapsule producer
        return pa.RecordBatchReader.from_stream(data).read_all()
    if module in ("duckdb", "_duckdb") and hasattr(data, "to_arrow_table"):  # a connection holding a result
        return data.to_arrow_table()
    raise ObservationsInputError(f"observations of type {type(data).__module__}.{type(data).__qualname__} cannot "
                                 f"be read; pass {_accepted()}")


def observations_table(data: object) -> pa.Table:
    """``data`` (any of the module docstring's shapes) as a pyarrow Table with the contract's columns."""
    table = _to_arrow(data)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise ObservationsInputError(
            f"the observations lack column(s) {missing}; they have {table.column_names}. Fix: select "
            f"{list(REQUIRED_COLUMNS)} (and {', '.join(OPTIONAL_COLUMNS)} where present) from the warehouse's "
            "observations table")
    return table
