"""Asset checks: Great Expectations suites on every raw source and on ``observations``, and freshness.

- Raw sources: each suite (``gwm_assets/sources/expectations/raw_*.yaml``) warns (severity WARN,
  non-blocking): raw rows are kept as they came and the observations build quarantines bad rows.
- ``observations``: its suite (``gwm_assets/warehouse/expectations/observations.yaml``) guards
  correctness: a failing blocking expectation stops the canvases downstream in the same run. A
  separate warning lists what the latest builds hold in quarantine, by check and series.
- Freshness per source warns when a live source has not refreshed within its release cadence
  (``gwm_assets/sources/freshness.py``; the ``stale_sources`` sensor reports the same between runs).

Checks read the warehouse read-only (waiting while a writer holds it) and import GX lazily.
"""

from pathlib import Path

import dagster as dg

from gwm_assets.automation_conditions import FOLLOW_UPSTREAM
from gwm_assets.checks.gx_runner import ExpectationOutcome, read_frame, validate
from gwm_assets.checks.suite import Suite, load_suite
from gwm_assets.observation_assets import observations
from gwm_assets.resources import SourceSettings, WarehouseResource
from gwm_assets.source_assets import raw_earnings, raw_fred, raw_news, raw_pmi, raw_tabular, raw_yahoo
from gwm_assets.sources.freshness import CADENCE_DAYS, LIVE_SETTING, SourceFreshness, read_freshness
from gwm_assets.sources.refresh import RAW_SPECS, utcnow
from gwm_assets.warehouse.validation import observations_suite

RAW_SUITE_DIR = Path(__file__).parent / "sources" / "expectations"
RAW_ASSETS = {"fred": raw_fred, "yahoo": raw_yahoo, "pmi": raw_pmi, "earnings": raw_earnings, "news": raw_news,
              "tabular": raw_tabular}
RAW_SUITES: dict[str, Suite] = {source: load_suite(RAW_SUITE_DIR / f"{RAW_SPECS[source].name}.yaml")
                                for source in RAW_ASSETS}


def _series_table(outcome: ExpectationOutcome) -> dg.MetadataValue:
    rows = "\n".join(f"| `{s}` | {n} |" for s, n in list(outcome.by_series.items())[:50])
    return dg.MetadataValue.md("| series | failing rows |\n|---|---|\n" + rows)


def _result(asset_key: dg.AssetKey, outcome: ExpectationOutcome, severity: dg.AssetCheckSeverity
            ) -> dg.AssetCheckResult:
    metadata = {"rows_validated": outcome.element_count, "failing_rows": outcome.unexpected_count,
                "failing_series": len(outcome.by_series), "summary": outcome.summary(),
                "expectation": outcome.expectation.expect, "description": outcome.expectation.description}
    if not outcome.passed:
        metadata["by_series"] = _series_table(outcome)
        metadata["examples"] = "; ".join(outcome.examples)
    return dg.AssetCheckResult(asset_key=asset_key, check_name=outcome.expectation.name, passed=outcome.passed,
                               severity=severity, metadata=metadata, description=outcome.summary())


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
                yield _result(asset.key, outcome, dg.AssetCheckSeverity.WARN)


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
            yield _result(observations.key, outcome, severity)


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


CHECKS = [raw_source_expectations, source_freshness, observations_expectations, quarantine_empty]
