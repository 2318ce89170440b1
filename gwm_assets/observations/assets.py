"""Warehouse assets that map sources onto the world: ``source_series`` and ``observations``."""

import dagster as dg

from gwm_assets.automation.conditions import FOLLOW_UPSTREAM
from gwm_assets.fields.assets import fields
from gwm_assets.observations.build import build_observations, observations_by_field, write_source_series
from gwm_assets.resources.sources import SourceSettings
from gwm_assets.resources.warehouse import WRITER_ASSET, WarehouseResource
from gwm_assets.resources.world import WorldSchemaResource
from gwm_assets.sources import tabular
from gwm_assets.sources.assets import SOURCE_ASSETS, raw_tabular
from gwm_assets.sources.catalog import CatalogError, load_catalog
from gwm_assets.validation.ranges import load_ranges, write_field_ranges
from gwm_assets.warehouse.clock import utcnow
from gwm_assets.warehouse.connection import transaction

# both follow their parents by themselves (see gwm_assets/automation/conditions.py)
WAREHOUSE = {"group_name": "warehouse", **WRITER_ASSET, "kinds": {"duckdb"},
             "automation_condition": FOLLOW_UPSTREAM}


# raw_tabular is a parent because both read the tabular mapping files: a new CSV materialized on its own is
# followed by its mapping here (and then by observations), never by observations without it
@dg.asset(**WAREHOUSE, deps=[fields, raw_tabular], description="The mapping catalog (source, key -> field path, "
          "transform, frequency, release lag) plus the tabular mapping files, validated against the world schema "
          "and the `fields` table.")
def source_series(context: dg.AssetExecutionContext, warehouse: WarehouseResource, world: WorldSchemaResource,
                  settings: SourceSettings) -> dg.MaterializeResult:
    schema = world.load()
    extra = [m for path in tabular.mapping_files(settings.tabular_dir)
             for m in tabular.load_mapping_file(path, schema).mappings]
    mappings = load_catalog(schema, extra=extra)
    with warehouse.connect() as conn:
        with transaction(conn):
            unknown = conn.execute(
                "SELECT list(f) FROM (SELECT unnest(?) AS f) WHERE f NOT IN (SELECT path FROM fields)",
                [[m.field for m in mappings]]).fetchone()[0]
            if unknown:
                raise CatalogError(f"catalog fields missing from the `fields` table: {unknown}. Fix: materialize "
                                   "`fields` with the current schema")
            rows = write_source_series(conn, mappings)
            ranged = write_field_ranges(conn, load_ranges(schema))
    by_source = {}
    for m in mappings:
        by_source[m.source] = by_source.get(m.source, 0) + 1
    context.log.info(f"source_series: {rows} mappings " + ", ".join(f"{k}={v}" for k, v in sorted(by_source.items())))
    return dg.MaterializeResult(metadata={"dagster/row_count": rows, "fields_with_plausible_range": ranged,
                                          **{f"mappings_{k}": v
                                                                          for k, v in by_source.items()}})


@dg.asset(**WAREHOUSE, deps=[source_series, *SOURCE_ASSETS], description="One long table (field_path, ts, "
          "available_at, value, revised_value, source, source_key, provenance, ingested_at) built from every raw "
          "table through the catalog; updated in place, unchanged rows keep their ingested_at.")
def observations(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect() as conn:
        with transaction(conn):
            load = build_observations(conn, utcnow(), run_id=context.run.run_id)
        per_field = observations_by_field(conn)
        version = conn.execute("""SELECT coalesce(md5(string_agg(field_path || ts || value || available_at, ','
                                   ORDER BY field_path, ts, source)), 'empty') FROM observations""").fetchone()[0]
    lines = [f"| `{r['field_path']}` | {r['source']} | {r['n']} | {r['first_ts']} | {r['last_ts']} |"
             for r in per_field.to_pylist()]
    context.log.info(f"observations: {load.rows} rows for {load.fields} fields ({load.inserted} inserted, "
                     f"{load.updated} updated, {load.deleted} deleted)")
    held = load.quarantine
    for check, series in held.by_check.items():
        context.log.warning(f"quarantined by {check}: " + ", ".join(f"{s} ({n} rows)" for s, n in series))
    quarantined_md = "\n".join(f"| {check} | `{s}` | {n} |" for check, rows in held.by_check.items() for s, n in rows)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": load.rows, "fields_with_data": load.fields, "rows_inserted": load.inserted,
            "rows_updated": load.updated, "rows_deleted": load.deleted,
            "series_recomputed": "all" if load.recomputed_series is None else load.recomputed_series,
            "rows_quarantined": held.rejected, "quarantine_new": held.newly_quarantined,
            "quarantine_released": held.released,
            "quarantined": dg.MetadataValue.md("| check | series | rows |\n|---|---|---|\n" + quarantined_md),
            "per_field": dg.MetadataValue.md("| field | source | rows | first | last |\n|---|---|---|---|---|\n"
                                             + "\n".join(lines)),
        },
        data_version=dg.DataVersion(version[:16]),
    )
