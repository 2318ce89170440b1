"""What follows a source by itself: the declarative automation conditions of the non-training assets.

A refresh job (``gwm_assets/sources/automation.py``) runs a source with everything downstream in one run. These
conditions cover the rest: when a person materializes a source (or ``fields``) on its own, from the UI
or the CLI, the ``follow_sources`` automation sensor requests what depends on it:

* :data:`FOLLOW_UPSTREAM` (``source_series``, ``observations``, the raw and observations checks):
  Dagster's ``eager()``: requested when a parent updated since the target was last requested or
  updated, never while a parent is missing or in progress or the target itself is in progress, and
  never for a parent update made by a run that also planned the target (so a refresh job or
  ``make run`` is not followed a second time). On the sensor's first tick nothing is requested.
* :data:`FOLLOW_CHECKED` (``coverage``, ``canvas/<node>``): the same, and only while the blocking
  checks of ``observations`` passed (or run in the same request, where a failure stops them in-run).

Not automated, on purpose: ``fields`` and ``bundled_history`` (inputs a person changes), the live
sources (their schedules and the EDGAR sensor decide), the ``freshness`` checks (the ``stale_sources``
sensor reports them between runs) and training (only a person or the opt-in ``weekly_training``
schedule starts it).
"""

import dagster as dg

from gwm_assets.automation.policy import TRAINING, sensor_status

FOLLOW_UPSTREAM = dg.AutomationCondition.eager()
FOLLOW_CHECKED = (dg.AutomationCondition.eager()
                  & dg.AutomationCondition.all_deps_blocking_checks_passed()).with_label("eager_after_checks")

follow_sources = dg.AutomationConditionSensorDefinition(
    "follow_sources", target=dg.AssetSelection.all() - TRAINING, default_status=sensor_status(),
    minimum_interval_seconds=30,
    description="Evaluates the eager conditions of source_series, observations, coverage, the canvases and "
                "their checks (gwm_assets/automation/conditions.py): a source materialized by hand is followed "
                "by what depends on it. Training has no condition and is never requested.")
