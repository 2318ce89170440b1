"""One ``canvas/<node>`` asset per curriculum node (group ``canvases``), built from ``observations``.

A canvas runs only after the blocking checks on ``observations`` pass. Its data version is the hash of
the observations it used: a refresh that adds nothing for the node's fields leaves it unchanged, so
training downstream is not marked stale.
"""

import base64

import dagster as dg

from gwm_assets.automation.conditions import FOLLOW_CHECKED
from gwm_assets.canvases.build import build_node_canvas, presence_png, record_canvas
from gwm_assets.observations.assets import observations
from gwm_assets.resources.paths import canvases_dir, curriculum_path
from gwm_assets.resources.warehouse import WRITER_ASSET, WarehouseResource
from gwm_assets.resources.world import WorldSchemaResource
from gwm_assets.warehouse.clock import utcnow
from gwm_assets.warehouse.connection import transaction
from gwm_model.curriculum import Curriculum, CurriculumNode, load_curriculum


def canvas_key(node: str) -> dg.AssetKey:
    return dg.AssetKey(["canvas", node])


def _canvas_asset(node: CurriculumNode) -> dg.AssetsDefinition:
    @dg.asset(key=canvas_key(node.name), group_name="canvases", deps=[observations], **WRITER_ASSET,
              kinds={"numpy", "safetensors"}, tags={"tier": str(node.tier)},
              automation_condition=FOLLOW_CHECKED,
              description=f"Canvas of curriculum node `{node.name}` (tier {node.tier}): {node.description}. "
                          f"Includes {', '.join(node.include)}; {node.canvas.frequency} steps.")
    def canvas(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
               world: WorldSchemaResource) -> dg.MaterializeResult:
        schema = world.load()
        with warehouse.connect() as conn:
            built = build_node_canvas(conn, node, schema, canvases_dir(warehouse.path))
            with transaction(conn):
                record_canvas(conn, built, utcnow())
        c = built.canvas
        verb = "built" if built.rebuilt else "unchanged (same data version), kept"
        context.log.info(f"canvas/{node.name}: {verb}; {built.fields_with_data} of {len(c.paths)} fields with data, "
                         f"{c.num_steps} {c.axis.frequency} steps, presence {built.presence_share:.4f}")
        if built.note:
            context.log.warning(f"canvas/{node.name}: {built.note}")
        png = presence_png(built)
        return dg.MaterializeResult(
            metadata={
                "fields_on_canvas": len(c.paths), "fields_with_data": built.fields_with_data,
                "presence_share": built.presence_share, "steps": c.num_steps, "frequency": c.axis.frequency,
                "start": str(c.axis.starts[0]), "end": str(c.axis.ends[-1]), "train_end": str(c.stats.train_end),
                "observations_used": built.n_observations, "data_version": c.data_version,
                "rebuilt": built.rebuilt, "note": built.note or "", "path": dg.MetadataValue.path(str(built.path)),
                "layout": f"{c.layout.H} x {c.layout.W}",
                "presence_heatmap": dg.MetadataValue.md(
                    f"![presence](data:image/png;base64,{base64.b64encode(png).decode()})"),
            },
            data_version=dg.DataVersion(c.data_version),
        )

    return canvas


def canvas_assets(curriculum: Curriculum) -> list[dg.AssetsDefinition]:
    return [_canvas_asset(curriculum[name]) for name in curriculum.order()]


CURRICULUM = load_curriculum(curriculum_path())
CANVAS_ASSETS = canvas_assets(CURRICULUM)
