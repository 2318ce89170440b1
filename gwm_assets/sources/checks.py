"""The checks of the raw source tables: their Great Expectations suites, and freshness.

- Each raw suite (``gwm_assets/sources/expectations/raw_*.yaml``) warns (severity WARN, non-blocking):
  raw rows are kept as they came and the observations build quarantines bad rows.
- ``freshness`` per source warns when a live source has not refreshed within its release cadence
  (``gwm_assets/sources/freshness.py``; the ``stale_sources`` sensor reports the same between runs).

Checks read the warehouse read-only (waiting while a writer holds it) and import GX lazily.
"""

from pathlib import Path

import dagster as dg

from gwm_assets.automation.conditions import FOLLOW_UPSTREAM
from gwm_assets.resources.sources import SourceSettings
from gwm_assets.resources.warehouse import WarehouseResource
from gwm_assets.sources.assets import RAW_ASSETS
from gwm_assets.sources.freshness import CADENCE_DAYS, LIVE_SETTING, SourceFreshness, read_freshness
from gwm_assets.sources.raw_tables import RAW_SPECS
from gwm_assets.validation.gx_runner import read_frame, validate
from gwm_assets.validation.results import check_result
from gwm_assets.validation.suite import Suite, load_suite
from gwm_assets.warehouse.clock import utcnow

RAW_SUITE_DIR = Path(__file__).parent / "expectations"
RAW_SUITES: dict[str, Suite] = {source: load_suite(RAW_SUITE_DIR / f"{RAW_SPECS[source].name}.yaml")
                                for source in RAW_ASSETS}


RAW_SPECS_CHECKS = [dg.AssetCheckSpec(e.name, asset=asset, description=e.description,
                                      automation_condition=FOLLOW_UPSTREAM)
                    for source, asset in RAW_ASSETS.items() for e in RAW_SUITES[source].expectations]
FRESHNESS_SPECS = [dg.AssetCheckSpec("freshness", asset=RAW_ASSETS[s], description=f"{s} refreshed within "
                                     f"{days} days when live ({LIVE_SETTING[s]})") for s, days in CADENCE_DAYS.items()]


@dg.multi_asset_check(specs=RAW_SPECS_CHECKS, can_subset=True, name="raw_source_expectations",
                      description="Great Expectations suites on every raw source table (warnings: raw rows are kept; "
                                  "bad rows are quarantined by the observations build).")
def raw_source_expectations(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
    selected = context.selected_asset_check_keys
    now = utcnow()
    for source, asset in RAW_ASSETS.items():
        suite = RAW_SUITES[source]
        wanted = {e.name for e in suite.expectations if dg.AssetCheckKey(asset.key, e.name) in selected}
        if not wanted:
            continue
        with warehouse.connect(read_only=True) as conn:
            exists = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ? "
                                  "AND table_type IN ('BASE TABLE', 'VIEW')", [suite.name]).fetchone()[0]
            frame = read_frame(conn, suite, now) if exists else None
        if frame is None:
            for name in sorted(wanted):
                yield dg.AssetCheckResult(asset_key=asset.key, check_name=name, passed=True,
                                          severity=dg.AssetCheckSeverity.WARN,
                                          metadata={"rows_validated": 0, "note": f"{suite.name} does not exist yet"})
            continue
        context.log.info(f"validating {suite.name}: {len(frame)} rows, {len(wanted)} expectations")
        for outcome in validate(frame, suite):
            if outcome.expectation.name in wanted:
                yield check_result(asset.key, outcome, dg.AssetCheckSeverity.WARN)


@dg.multi_asset_check(specs=FRESHNESS_SPECS, can_subset=True, name="source_freshness",
                      description="Warns when a live source has not refreshed within its release cadence.")
def source_freshness(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
                     settings: SourceSettings):
    wanted = [s for s in CADENCE_DAYS if dg.AssetCheckKey(RAW_ASSETS[s].key, "freshness")
              in context.selected_asset_check_keys]
    with warehouse.connect(read_only=True) as conn:
        standing = read_freshness(conn, settings, utcnow(), wanted)
    for item in standing:
        yield dg.AssetCheckResult(**freshness_outcome(item))


def freshness_outcome(item: SourceFreshness) -> dict:
    """The ``freshness`` check outcome of one source, as keyword arguments of ``AssetCheckResult`` (in runs)
    and ``AssetCheckEvaluation`` (reported between runs by the ``stale_sources`` sensor)."""
    return {"asset_key": RAW_ASSETS[item.source].key, "check_name": "freshness", "passed": item.passed,
            "severity": dg.AssetCheckSeverity.WARN, "description": item.summary, "metadata": item.metadata()}


SOURCE_CHECKS = [raw_source_expectations, source_freshness]
