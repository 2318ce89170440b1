"""Asset ``fields``: the world schema loaded into the warehouse in one transaction."""

from collections import Counter

import dagster as dg

from gwm_assets.fields.table import COLUMNS, write_fields
from gwm_assets.resources.warehouse import WRITER_ASSET, WarehouseResource
from gwm_assets.resources.world import WorldSchemaResource

FIELDS_COLUMN_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("path", "VARCHAR", description="canonical dotted field path (primary key)"),
    dg.TableColumn("layer", "VARCHAR", description="top-level layer or entity instance"),
    dg.TableColumn("parent", "VARCHAR", description="path of the enclosing group (its coarse field)"),
    dg.TableColumn("kind", "VARCHAR", description="leaf (declared quantity) or coarse (subtree summary)"),
    dg.TableColumn("period", "VARCHAR", description="update period: tick ... decadal"),
    dg.TableColumn("period_days", "DOUBLE", description="nominal period length in days"),
    dg.TableColumn("loss_weight", "DOUBLE", description="loss weight as a training target"),
    dg.TableColumn("unit", "VARCHAR", description="unit from the schema's vocabulary"),
    dg.TableColumn("description", "VARCHAR", description="one-line description (embedded for conditioning)"),
    dg.TableColumn("h", "INTEGER", description="footprint rows"),
    dg.TableColumn("w", "INTEGER", description="footprint columns"),
    dg.TableColumn("is_output", "BOOLEAN", description="false for input-only (conditioning) fields"),
    dg.TableColumn("entity", "VARCHAR", description="entity instance the field belongs to, if any"),
    dg.TableColumn("entity_type", "VARCHAR", description="entity template (Country, Business, ...)"),
    dg.TableColumn("schema_hash", "VARCHAR", description="content hash of the schema that wrote the row"),
])
assert [c.name for c in FIELDS_COLUMN_SCHEMA.columns] == list(COLUMNS)


@dg.asset(
    key="fields",
    group_name="warehouse",
    kinds={"duckdb"},
    **WRITER_ASSET,
    code_version="1",
    description="The world schema (every leaf and coarse field with period, unit, weight, footprint, "
                "description) as warehouse table `fields`. Replaced in one transaction.",
    metadata={"dagster/column_schema": FIELDS_COLUMN_SCHEMA, "dagster/table_name": "fields"},
)
def fields(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
           world: WorldSchemaResource) -> dg.MaterializeResult:
    schema = world.load()  # validation errors surface here, before the warehouse is touched
    context.log.info(f"loaded {len(schema.leaves)} leaf + {len(schema.coarse)} coarse fields "
                     f"from {schema.source} (schema {schema.schema_hash})")
    with warehouse.connect() as conn:
        load = write_fields(conn, schema)
    leaves_per_layer = Counter(f.layer for f in schema.leaves)
    table = "\n".join(f"| `{layer}` | {leaves_per_layer[layer]} |" for layer in schema.layers)
    context.log.info(f"fields: {load.rows} rows ({load.added} added, {load.removed} removed, "
                     f"{load.changed} changed)")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": load.rows,
            "leaf_fields": load.leaves,
            "coarse_fields": load.coarse,
            "layers": load.layers,
            "added": load.added,
            "removed": load.removed,
            "changed": load.changed,
            "schema_hash": schema.schema_hash,
            "previous_schema_hash": load.previous_hash or "",
            "schema_file": dg.MetadataValue.path(schema.source),
            "leaves_per_layer": dg.MetadataValue.md("| layer | leaf fields |\n|---|---|\n" + table),
        },
        data_version=dg.DataVersion(schema.schema_hash),
    )
