"""``gwm predict``'s work, without Dagster: pick the node, read its observations read-only, forecast.

The node is the one named, or else the most integrated trained node (highest tier, then curriculum
order) that forecasts every requested field. Unknown fields and nodes fail with the closest valid
names; a field the node does not forecast names the nodes that do.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gwm_assets.forecasts.build import read_node
from gwm_assets.warehouse import open_warehouse
from gwm_model.curriculum import Curriculum
from gwm_model.curriculum.fingerprint import stored_manifest
from gwm_model.inference import ForecastRequestError, WorldModel
from gwm_model.inference.steps import forecast_fields
from gwm_model.schema import WorldSchema


@dataclass
class Prediction:
    node: str
    model: WorldModel
    frame: pd.DataFrame  # WorldModel.forecast's columns from the one origin, plus unit
    history: pd.DataFrame
    units: dict[str, str]


def _closest(word: str, options: Sequence[str], n: int = 5) -> str:
    close = difflib.get_close_matches(word, list(options), n=n, cutoff=0.5)
    return ", ".join(close) if close else "none close"


def trained_outputs(curriculum: Curriculum, checkpoints: Path) -> dict[str, tuple[str, ...]]:
    """Node -> the fields its checkpoint forecasts (scalar outputs with training data), for trained nodes."""
    out = {}
    for name in curriculum.order():
        manifest = stored_manifest(Path(checkpoints) / name)
        if not manifest or not int(manifest.get("steps") or 0):
            continue
        out[name] = forecast_fields(manifest)
    return out


def choose_node(curriculum: Curriculum, checkpoints: Path, fields: Sequence[str], schema: WorldSchema,
                node: str | None = None) -> str:
    known = set(schema.project(["*"]).paths).union(
        *(curriculum[n].projection(schema).paths for n in curriculum.order()))
    for path in fields:
        if path not in known:
            raise ForecastRequestError(f"unknown field '{path}'. Closest valid fields: {_closest(path, sorted(known))}")
    if node is not None and node not in curriculum.nodes:
        raise ForecastRequestError(f"unknown node '{node}'. Closest nodes: {_closest(node, curriculum.order())} "
                                   f"(all: {', '.join(curriculum.order())})")
    outputs = trained_outputs(curriculum, checkpoints)
    if node is not None:
        if node not in outputs:
            raise ForecastRequestError(f"node '{node}' has no trained checkpoint in {checkpoints}. Fix: materialize "
                                       f"train/{node} (trained: {', '.join(outputs) or 'none'})")
        missing = [p for p in fields if p not in outputs[node]]
        if missing:
            raise ForecastRequestError(f"node '{node}' does not forecast {missing}. " + _who(missing, outputs))
        return node
    able = [n for n in outputs if all(p in outputs[n] for p in fields)]
    if not able:
        raise ForecastRequestError(f"no trained node forecasts all of {list(fields)}. " + _who(fields, outputs))
    return max(able, key=lambda n: (curriculum[n].tier, -curriculum.order().index(n)))


def _who(fields: Sequence[str], outputs: dict[str, tuple[str, ...]]) -> str:
    parts = [f"{p}: {', '.join(n for n, o in outputs.items() if p in o) or 'no trained node'}" for p in fields]
    return "Nodes that forecast each: " + "; ".join(parts)


def predict_fields(curriculum: Curriculum, schema: WorldSchema, warehouse: Path, checkpoints: Path,
                   fields: Sequence[str], node: str | None = None, as_of: str | None = None,
                   horizon: int | None = None, timeout_s: float = 300.0,
                   on_wait: Callable[[float, BaseException], None] | None = None,
                   history_points: int = 104) -> Prediction:
    """Forecasts of ``fields`` from ``as_of`` (default: the newest publication among the node's fields)."""
    name = choose_node(curriculum, checkpoints, fields, schema, node)
    with open_warehouse(warehouse, read_only=True, timeout_s=timeout_s, on_wait=on_wait) as conn:
        inputs = read_node(conn, curriculum[name], schema, checkpoints)
    if inputs.reason:
        raise ForecastRequestError(f"node '{name}': {inputs.reason}")
    model = WorldModel.load(inputs.checkpoint).observe(inputs.observations, as_of=as_of, schema=schema)
    frame = model.forecast(list(fields), horizon=horizon)
    frame["unit"] = frame["field_path"].map(inputs.units)
    return Prediction(name, model, frame, model.history(list(fields), last=history_points), inputs.units)

