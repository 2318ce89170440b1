"""The ``forecasts`` asset (group ``training``): every trained node's forecasts, live and backtest, in the warehouse.

It runs after every ``train/<node>``. Per node: the checkpoint is checked against the schema, the node's
observations are read and hashed, and when ``forecast_history`` already holds this checkpoint's rows on
this data they are reused; otherwise the model forecasts (:mod:`gwm_assets.forecasts.build`). Every
node is computed before anything is written, then every node's rows replace its old ones in one
transaction (:mod:`gwm_assets.forecasts.table`). Metadata: a row per node and, per node, a picture of
its most-observed fields (history, forecast with its 90% band, naive forecast).
"""


from pathlib import Path

import dagster as dg
import pandas as pd

from gwm_assets.canvases.assets import CURRICULUM
from gwm_assets.forecasts.build import MAX_BACKTEST_ORIGINS, NodeInputs, forecast_node, observed_model, read_node
from gwm_assets.forecasts.plots import forecast_png
from gwm_assets.forecasts.table import drop_node_forecasts, ensure_tables, replace_node_forecasts
from gwm_assets.resources.training import TrainingResource
from gwm_assets.resources.warehouse import WRITER_ASSET, WarehouseResource
from gwm_assets.resources.world import WorldSchemaResource
from gwm_assets.training.assets import train_key
from gwm_assets.training.plots import markdown_image
from gwm_assets.warehouse.clock import utcnow
from gwm_assets.warehouse.connection import transaction
from gwm_model.curriculum import Curriculum
from gwm_model.inference import WorldModel

PLOTTED_FIELDS = 4
HISTORY_POINTS = 52


def _picture(node: str, model: WorldModel, frame: pd.DataFrame, units: dict[str, str]) -> str:
    live = frame[frame["kind"] == "live"]
    observed = model.history(list(dict.fromkeys(live["field_path"])), last=HISTORY_POINTS)
    counts = observed.groupby("field_path").size().sort_values(ascending=False, kind="stable")
    chosen = list(counts.index[:PLOTTED_FIELDS])
    title = f"{node}: forecast as of {str(model.as_of)[:19]} (its last {HISTORY_POINTS} observations before)"
    png = forecast_png(title, observed[observed["field_path"].isin(chosen)], live[live["field_path"].isin(chosen)],
                       units)
    return markdown_image(png, f"{node} forecasts")


def forecasts_asset(curriculum: Curriculum) -> dg.AssetsDefinition:
    nodes = curriculum.order()

    @dg.asset(name="forecasts", group_name="training", deps=[train_key(n) for n in nodes], **WRITER_ASSET,
              kinds={"pytorch", "duckdb"},
              description="Tables `forecasts` (each trained node's current rows) and `forecast_history` (every "
                          "checkpoint's): live forecasts from the newest data for horizons 1..H of the node's "
                          "canvas and backtest forecasts from rolling origins over the test period, each with the "
                          "naive forecast beside the model's (persistence or climatology, chosen on validation).")
    def forecasts(context: dg.AssetExecutionContext, world: WorldSchemaResource, warehouse: WarehouseResource,
                  training: TrainingResource) -> dg.MaterializeResult:
        schema = world.load()
        checkpoints = Path(training.checkpoints_path)
        with warehouse.connect(read_only=True) as conn:
            inputs = [read_node(conn, curriculum[n], schema, checkpoints) for n in nodes]
        computed: dict[str, tuple[pd.DataFrame, WorldModel] | None] = {}
        for i, item in enumerate(inputs, 1):
            if item.reason:
                context.log.info(f"forecasts [{i}/{len(inputs)}] {item.node.name}: skipped, {item.reason}")
            elif item.already_stored:
                computed[item.node.name] = None
                context.log.info(f"forecasts [{i}/{len(inputs)}] {item.node.name}: checkpoint "
                                 f"{item.checkpoint_sha[:12]} on data {item.data_version} already forecast; kept")
            else:
                frame, model = forecast_node(item, schema, MAX_BACKTEST_ORIGINS)
                computed[item.node.name] = (frame, model)
                context.log.info(f"forecasts [{i}/{len(inputs)}] {item.node.name}: {frame['field_path'].nunique()} "
                                 f"fields as of {str(model.as_of)[:19]}, {int((frame['kind'] == 'live').sum())} live "
                                 f"and {int((frame['kind'] == 'backtest').sum())} backtest rows")
        now = utcnow()
        rows, pictures = [], {}
        with warehouse.connect() as conn:
            ensure_tables(conn)
            with transaction(conn):  # every node's rows, or none
                for item in inputs:
                    name = item.node.name
                    if item.reason:
                        drop_node_forecasts(conn, name)
                        rows.append(_row(item, 0, None))
                        continue
                    made = computed[name]
                    n = replace_node_forecasts(conn, name, item.checkpoint_sha, item.data_version,
                                               made[0] if made else None, now)
                    rows.append(_row(item, n, conn.execute("SELECT max(as_of) FROM forecasts WHERE node = ? AND "
                                                           "kind = 'live'", [name]).fetchone()[0]))
            stored = {item.node.name: conn.execute("SELECT * FROM forecasts WHERE node = ? AND kind = 'live'",
                                                   [item.node.name]).df()
                      for item in inputs if not item.reason and computed[item.node.name] is None}
        for item in inputs:  # the pictures, with the warehouse closed
            if item.reason:
                continue
            made = computed[item.node.name]
            live, model = made if made else (stored[item.node.name], observed_model(item, schema))
            pictures[item.node.name] = _picture(item.node.name, model, live, item.units)
        table = ["| node | rows | as of | checkpoint | data version | note |", "|---|---|---|---|---|---|"]
        table += [f"| {r['node']} | {r['rows']} | {r['as_of'] or ''} | {r['checkpoint']} | {r['data_version']} | "
                  f"{r['note']} |" for r in rows]
        metadata: dict[str, object] = {
            "nodes_forecast": sum(1 for r in rows if r["rows"]), "rows": sum(r["rows"] for r in rows),
            "nodes": dg.MetadataValue.md("\n".join(table)),
            "query": dg.MetadataValue.md("`gwm sql \"select node, field_path, target_ts, horizon, mean, q05, q95, "
                                         "naive from forecasts where kind = 'live' order by node, field_path, "
                                         "horizon\"`")}
        metadata.update({f"plot_{name}": dg.MetadataValue.md(md) for name, md in pictures.items()})
        return dg.MaterializeResult(metadata=metadata)

    return forecasts


def _row(item: NodeInputs, n: int, as_of) -> dict:
    return {"node": item.node.name, "rows": n, "as_of": str(as_of)[:19] if as_of else None,
            "checkpoint": item.checkpoint_sha[:12], "data_version": item.data_version,
            "note": item.reason or ("kept" if item.already_stored else "")}


FORECAST_ASSETS = [forecasts_asset(CURRICULUM)]
