"""One node's forecasts from its checkpoint and the warehouse (no Dagster here; the asset and ``gwm predict``
call it).

1. :func:`read_node` checks the checkpoint on disk against the schema the warehouse's fields come
   from (a different schema hash is an error with the fix), hashes the node's observations (the
   data version) and reads them; nothing is computed while the warehouse is open.
2. :func:`forecast_node` encodes them for the checkpoint (:class:`~gwm_model.inference.WorldModel`) and
   forecasts each output field with training data: ``live`` rows from the newest publication among
   the node's fields, horizons 1..H of its canvas, and ``backtest`` rows from rolling origins over the
   test period (after ``train_end``), each with the naive forecast beside the model's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from gwm_assets.forecasts.table import node_data_version, stored_rows
from gwm_model.curriculum import CurriculumNode
from gwm_model.curriculum.fingerprint import stored_manifest
from gwm_model.inference import WorldModel
from gwm_model.inference.frames import WAREHOUSE_COLUMNS
from gwm_model.schema import WorldSchema

MAX_BACKTEST_ORIGINS = 104  # rolling origins over the test period, evenly spread


class ForecastInputError(ValueError):
    """A checkpoint that cannot forecast this warehouse's data; the message names the node and the fix."""


@dataclass
class NodeInputs:
    """What forecasting one node needs, read before anything is computed; ``reason`` says why not, when not."""

    node: CurriculumNode
    checkpoint: Path
    manifest: dict | None = None
    data_version: str = ""
    observations: pa.Table | None = None
    units: dict[str, str] = field(default_factory=dict)
    reason: str = ""
    already_stored: bool = False

    @property
    def checkpoint_sha(self) -> str:
        return (self.manifest or {}).get("weights_sha256", "")


def read_node(conn: duckdb.DuckDBPyConnection, node: CurriculumNode, schema: WorldSchema,
              checkpoints: Path) -> NodeInputs:
    directory = Path(checkpoints) / node.name
    inputs = NodeInputs(node, directory)
    manifest = stored_manifest(directory)
    if manifest is None or "weights_sha256" not in manifest:
        inputs.reason = f"no checkpoint at {directory}: materialize train/{node.name} first"
        return inputs
    inputs.manifest = manifest
    if not int(manifest.get("steps") or 0):
        inputs.reason = f"not trained (0 steps{': ' + manifest['note'] if manifest.get('note') else ''})"
        return inputs
    projection = node.projection(schema)
    trained_on = manifest.get("canvas", {}).get("schema_hash")
    if trained_on != projection.schema_hash:
        raise ForecastInputError(
            f"forecasts/{node.name}: the checkpoint in {directory} was trained on schema hash {trained_on}, but the "
            f"warehouse's fields give this node schema hash {projection.schema_hash}. Fix: re-materialize "
            f"canvas/{node.name} and train/{node.name} on this schema, or set GWM_SCHEMA to the schema it was "
            "trained with")
    inputs.data_version, n = node_data_version(conn, projection.paths)
    if n == 0:
        inputs.reason = "no observations of its fields in the warehouse"
        return inputs
    inputs.units = {f.path: f.unit for f in projection.fields}
    inputs.already_stored = stored_rows(conn, node.name, inputs.checkpoint_sha, inputs.data_version) > 0
    inputs.observations = conn.execute(
        f"SELECT {', '.join(WAREHOUSE_COLUMNS)} FROM observations WHERE list_contains(?, field_path)",
        [list(projection.paths)]).to_arrow_table()
    return inputs


def observed_model(inputs: NodeInputs, schema: WorldSchema) -> WorldModel:
    """The node's checkpoint, observing its observations as of the newest publication among its fields."""
    if inputs.observations is None:
        raise ValueError(f"forecasts/{inputs.node.name}: nothing was read to forecast from ({inputs.reason})")
    return WorldModel.load(inputs.checkpoint).observe(inputs.observations, schema=schema)


def _units(frame: pd.DataFrame, units: dict[str, str]) -> pd.Series:
    unit = frame["field_path"].map(units).fillna("")
    return unit.where(frame["transform"] == "level", frame["transform"] + " of " + unit)


def forecast_node(inputs: NodeInputs, schema: WorldSchema, max_origins: int = MAX_BACKTEST_ORIGINS
                  ) -> tuple[pd.DataFrame, WorldModel]:
    """Live and backtest rows (the table's columns but the bookkeeping ones) and the model that made them,
    observed as of the newest publication among the node's fields."""
    model = observed_model(inputs, schema)
    fields = list(model.forecast_fields)
    live = model.forecast(fields).assign(kind="live")
    backtest = model.forecast(fields, origins=model.test_origins(limit=max_origins)).assign(kind="backtest")
    frame = pd.concat([live, backtest], ignore_index=True)
    frame["unit"] = _units(frame, inputs.units)
    frame["as_of"] = pd.to_datetime(frame["as_of"])
    for column in ("target_ts", "target_end", "last_observed"):
        frame[column] = pd.to_datetime(frame[column]).dt.date
    frame["horizon"] = frame["horizon"].astype(np.int32)
    return frame, model
