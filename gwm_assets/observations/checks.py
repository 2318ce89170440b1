"""The checks of ``observations``: its Great Expectations suite, and what the builds hold in quarantine.

The suite (``gwm_assets/observations/expectations/observations.yaml``) guards correctness: a failing
blocking expectation stops the canvases downstream in the same run. ``quarantine_empty`` warns while
input rows are held in quarantine, by check and series.

Checks read the warehouse read-only (waiting while a writer holds it) and import GX lazily.
"""

import dagster as dg

from gwm_assets.automation.conditions import FOLLOW_UPSTREAM
from gwm_assets.observations.assets import observations
from gwm_assets.observations.quarantine import observations_suite
from gwm_assets.resources.warehouse import WarehouseResource
from gwm_assets.validation.gx_runner import read_frame, validate
from gwm_assets.validation.results import check_result
from gwm_assets.warehouse.clock import utcnow

OBS_SUITE = observations_suite()
OBS_SPECS = [dg.AssetCheckSpec(e.name, asset=observations, blocking=e.blocking, description=e.description,
                               automation_condition=FOLLOW_UPSTREAM)
             for e in OBS_SUITE.expectations]


@dg.multi_asset_check(specs=OBS_SPECS, can_subset=True, name="observations_expectations",
                      description="Great Expectations suite on the published observations; blocking expectations "
                                  "stop canvases downstream when they fail.")
def observations_expectations(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
    with warehouse.connect(read_only=True) as conn:
        frame = read_frame(conn, OBS_SUITE, utcnow())
    context.log.info(f"validating observations: {len(frame)} rows")
    for outcome in validate(frame, OBS_SUITE):
        if dg.AssetCheckKey(observations.key, outcome.expectation.name) in context.selected_asset_check_keys:
            severity = dg.AssetCheckSeverity.ERROR if outcome.expectation.blocking else dg.AssetCheckSeverity.WARN
            yield check_result(observations.key, outcome, severity)


@dg.asset_check(asset=observations, name="quarantine_empty", automation_condition=FOLLOW_UPSTREAM,
                description="Warns while input rows are held in quarantine (rejected by a source's parser or by "
                            "the observations build), naming the check, the series and the count.")
def quarantine_empty(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect(read_only=True) as conn:
        held = conn.execute("""
            SELECT check_name, coalesce(field_path, '-') || ' <- ' || source || ':' || source_key, count(*),
                   any_value(reason)
            FROM quarantine WHERE released_at IS NULL GROUP BY ALL ORDER BY 3 DESC, 1, 2""").fetchall()
    total = sum(r[2] for r in held)
    summary = ("nothing held" if not held else f"{total} rows held in {len(held)} (check, series) groups: "
               + "; ".join(f"{c} {s}: {n} (e.g. {why})" for c, s, n, why in held[:5]))
    table = "\n".join(f"| {c} | `{s}` | {n} | {why} |" for c, s, n, why in held[:100])
    return dg.AssetCheckResult(passed=not held, severity=dg.AssetCheckSeverity.WARN, description=summary,
                               metadata={"rows_held": total, "summary": summary, "held": dg.MetadataValue.md(
                                   "| check | series | rows | example reason |\n|---|---|---|---|\n" + table)})



OBSERVATION_CHECKS = [observations_expectations, quarantine_empty]
