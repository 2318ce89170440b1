"""Great Expectations outcomes as Dagster asset-check results, with the failing series in the metadata."""

import dagster as dg

from gwm_assets.validation.gx_runner import ExpectationOutcome


def _series_table(outcome: ExpectationOutcome) -> dg.MetadataValue:
    rows = "\n".join(f"| `{s}` | {n} |" for s, n in list(outcome.by_series.items())[:50])
    return dg.MetadataValue.md("| series | failing rows |\n|---|---|\n" + rows)


def check_result(asset_key: dg.AssetKey, outcome: ExpectationOutcome, severity: dg.AssetCheckSeverity
                 ) -> dg.AssetCheckResult:
    metadata = {"rows_validated": outcome.element_count, "failing_rows": outcome.unexpected_count,
                "failing_series": len(outcome.by_series), "summary": outcome.summary(),
                "expectation": outcome.expectation.expect, "description": outcome.expectation.description}
    if not outcome.passed:
        metadata["by_series"] = _series_table(outcome)
        metadata["examples"] = "; ".join(outcome.examples)
    return dg.AssetCheckResult(asset_key=asset_key, check_name=outcome.expectation.name, passed=outcome.passed,
                               severity=severity, metadata=metadata, description=outcome.summary())
