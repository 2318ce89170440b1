"""The ``coverage`` assets: the coverage views and heatmap, and the ``coverage_plan`` table."""

import base64

import dagster as dg

from gwm_assets.automation.conditions import FOLLOW_CHECKED
from gwm_assets.coverage.heatmap import render_heatmap_png
from gwm_assets.coverage.plan import LAYER_SUMMARY, write_coverage_plan
from gwm_assets.observations.assets import observations
from gwm_assets.resources.paths import warehouse_path
from gwm_assets.resources.warehouse import WRITER_ASSET, WarehouseResource
from gwm_assets.resources.world import WorldSchemaResource
from gwm_assets.warehouse.clock import utcnow
from gwm_assets.warehouse.connection import transaction
from gwm_assets.warehouse.coverage_views import create_coverage_views


def markdown_table(columns: list[str], rows: list[tuple]) -> str:
    return "\n".join(["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
                      *("| " + " | ".join(str(v) for v in row) + " |" for row in rows)])


@dg.asset(group_name="warehouse", **WRITER_ASSET, kinds={"duckdb"}, deps=[observations],
          automation_condition=FOLLOW_CHECKED,
          description="Views `field_coverage` (per field: layer, sources, n_obs, first/last date, declared vs "
                      "observed period, staleness, share of the time axis) and `layer_coverage` (per top-level "
                      "layer: fields with data / all fields), and a coverage heatmap (layers and fields x years).")
def coverage(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect() as conn:
        with transaction(conn):
            create_coverage_views(conn)
        layers = conn.execute("SELECT * FROM layer_coverage").fetchall()
        columns = [d[0] for d in conn.description]
        with_data, leaves, stale = conn.execute("""SELECT count(*) FILTER (n_obs > 0), count(*),
                                                          count(*) FILTER (is_stale)
                                                   FROM field_coverage WHERE kind = 'leaf'""").fetchone()
        png = render_heatmap_png(conn, utcnow().date())
    image_path = warehouse_path().parent / "coverage" / "coverage.png"
    image_path.parent.mkdir(parents=True, exist_ok=True)
    image_path.write_bytes(png)
    context.log.info(f"coverage: {with_data} of {leaves} leaf fields have data ({stale} stale) in "
                     f"{sum(1 for r in layers if r[1] > 0)} of {len(layers)} layers; heatmap at {image_path}")
    return dg.MaterializeResult(metadata={
        "leaf_fields_with_data": with_data, "leaf_fields": leaves, "stale_fields": stale,
        "layers_with_data": sum(1 for r in layers if r[1] > 0), "layers": len(layers),
        "heatmap": dg.MetadataValue.md(f"![coverage heatmap](data:image/png;base64,{base64.b64encode(png).decode()})"),
        "heatmap_path": dg.MetadataValue.path(str(image_path)),
        "layer_coverage": dg.MetadataValue.md(markdown_table(columns, layers)),
    })


@dg.asset(group_name="warehouse", **WRITER_ASSET, kinds={"duckdb"}, deps=[observations],
          automation_condition=FOLLOW_CHECKED,
          description="Table `coverage_plan`: per leaf field its layer, planned sources (catalog and your tabular "
                      "files), which of them have offline rows now, what a live refresh needs (FRED_API_KEY, "
                      "GWM_LIVE=1), and whether it is fillable offline, live only, unobservable by nature (why) "
                      "or not planned yet (why).")
def coverage_plan(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                  world: WorldSchemaResource) -> dg.MaterializeResult:
    with warehouse.connect() as conn:
        with transaction(conn):
            counts = write_coverage_plan(conn, world.load())
        layers = conn.execute(LAYER_SUMMARY).fetchall()
        columns = [d[0] for d in conn.description]
    context.log.info("coverage_plan: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + " leaf fields")
    return dg.MaterializeResult(metadata={**{f"fields_{k}": v for k, v in counts.items()},
                                          "per_layer": dg.MetadataValue.md(markdown_table(columns, layers))})
