"""Asset checks: Great Expectations suites on every raw source and on ``observations``, and freshness.

- Raw sources: each suite (``gwm_assets/sources/expectations/raw_*.yaml``) warns (severity WARN,
  non-blocking): raw rows are kept as they came and the observations build quarantines bad rows.
- ``observations``: its suite (``gwm_assets/warehouse/expectations/observations.yaml``) guards
  correctness: a failing blocking expectation stops the canvases downstream in the same run. A
  separate warning lists what the latest builds hold in quarantine, by check and series.
- Freshness per source warns when a live source has not refreshed within its release cadence.

Checks read the warehouse read-only (waiting while a writer holds it) and import GX lazily.
"""

from datetime import timedelta
from pathlib import Path

import dagster as dg

from gwm_assets.checks.gx_runner import ExpectationOutcome, read_frame, validate
from gwm_assets.checks.suite import Suite, load_suite
from gwm_assets.observation_assets import observations
from gwm_assets.resources import SourceSettings, WarehouseResource
from gwm_assets.source_assets import raw_earnings, raw_fred, raw_news, raw_pmi, raw_tabular, raw_yahoo
from gwm_assets.sources.refresh import RAW_SPECS, WATERMARKS, utcnow
from gwm_assets.warehouse.validation import observations_suite

RAW_SUITE_DIR = Path(__file__).parent / "sources" / "expectations"
RAW_ASSETS = {"fred": raw_fred, "yahoo": raw_yahoo, "pmi": raw_pmi, "earnings": raw_earnings, "news": raw_news,
              "tabular": raw_tabular}
# how often each live source publishes something new (days), for the freshness warning; tabular has no cadence
CADENCE_DAYS = {"fred": 3, "yahoo": 4, "pmi": 35, "earnings": 100, "news": 1}
LIVE_SETTING = {"fred": "GWM_LIVE=1 and FRED_API_KEY", "yahoo": "GWM_LIVE=1", "pmi": "GWM_LIVE=1",
                "earnings": "GWM_LIVE=1 and a SEC user agent", "news": "GWM_LIVE=1"}
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


RAW_SPECS_CHECKS = [dg.AssetCheckSpec(e.name, asset=asset, description=e.description)
                    for source, asset in RAW_ASSETS.items() for e in RAW_SUITES[source].expectations]
FRESHNESS_SPECS = [dg.AssetCheckSpec("freshness", asset=RAW_ASSETS[s], description=f"{s} refreshed within "
                                     f"{days} days when live") for s, days in CADENCE_DAYS.items()]


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
                                  "AND table_type = 'BASE TABLE'", [suite.name]).fetchone()[0]
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
    now = utcnow()
    with warehouse.connect(read_only=True) as conn:
        logged = {r[0]: r[1:] for r in conn.execute("""
            SELECT source, max(finished_at) FILTER (status IN ('ok', 'partial')), arg_max(status, finished_at),
                   arg_max(message, finished_at)
            FROM refresh_log GROUP BY source""").fetchall()}
        tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        last_data = {}
        for source in CADENCE_DAYS:
            spec, (_, column) = RAW_SPECS[source], WATERMARKS[source]
            if spec.name in tables:
                last_data[source] = conn.execute(f'SELECT max("{column}") FROM {spec.name}').fetchone()[0]
    for source, days in CADENCE_DAYS.items():
        key = dg.AssetCheckKey(RAW_ASSETS[source].key, "freshness")
        if key not in context.selected_asset_check_keys:
            continue
        last_ok, last_status, last_message = logged.get(source, (None, None, None))
        meta = {"last_successful_refresh": str(last_ok or "never"), "last_status": str(last_status or "never run"),
                "latest_data_point": str(last_data.get(source) or "none"), "cadence_days": days}
        if not settings.live:
            passed = True
            held = (f"history comes from the embedded default, latest data point {meta['latest_data_point']}"
                    if last_data.get(source) else "the embedded default has no real history for it")
            text = f"{source}: live refresh is off ({LIVE_SETTING[source]} turns it on); {held}"
        else:
            passed = last_ok is not None and now - last_ok <= timedelta(days=days)
            text = (f"{source}: last successful refresh {meta['last_successful_refresh']} "
                    f"({'within' if passed else 'older than'} its {days}-day cadence)"
                    + (f"; last run {last_status}: {last_message}" if last_status not in ("ok", None) else ""))
        yield dg.AssetCheckResult(asset_key=key.asset_key, check_name="freshness", passed=passed,
                                  severity=dg.AssetCheckSeverity.WARN, description=text,
                                  metadata={**meta, "summary": text})


OBS_SUITE = observations_suite()
OBS_SPECS = [dg.AssetCheckSpec(e.name, asset=observations, blocking=e.blocking, description=e.description)
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


@dg.asset_check(asset=observations, name="quarantine_empty", description="Warns while input rows are held in "
                "quarantine (rejected by a source's parser or by the observations build), naming the check, the "
                "series and the count.")
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
