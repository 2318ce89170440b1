"""How runs start in gwm, whoever starts them: the tags runs carry, the automation switch, run-in-flight checks.

* ``GWM_AUTOMATION=off`` makes every schedule and sensor start STOPPED (:func:`schedule_status`,
  :func:`sensor_status`); by default they start RUNNING and skip, saying why, while a source has no
  credentials.
* Runs carry the tag ``gwm/trigger`` (:data:`TRIGGER_TAG`) naming what started them, and training runs of
  a policy ``gwm/policy``.
* :func:`running_run`: a schedule skips a tick while the previous run of its job is still queued or
  running (no pile-up behind the DuckDB pool).
* :data:`TRAINING`: the ``training`` group, which no refresh job and no automation condition touches.
"""

import os

import dagster as dg

TRIGGER_TAG = "gwm/trigger"
POLICY_TAG = "gwm/policy"
AUTOMATION_ENV = "GWM_AUTOMATION"
TRAINING = dg.AssetSelection.groups("training")
ACTIVE_RUN_STATUSES = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                       dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def automation_on() -> bool:
    """``GWM_AUTOMATION=off`` starts every schedule and sensor stopped (default: on)."""
    value = os.environ.get(AUTOMATION_ENV, "on").strip().lower()
    if value not in ("on", "off", ""):
        raise ValueError(f"{AUTOMATION_ENV}={value!r}: use 'on' (default) or 'off'")
    return value != "off"


def schedule_status() -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if automation_on() else dg.DefaultScheduleStatus.STOPPED


def sensor_status() -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if automation_on() else dg.DefaultSensorStatus.STOPPED


def running_run(instance: dg.DagsterInstance, job_name: str) -> str | None:
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=job_name, statuses=ACTIVE_RUN_STATUSES), limit=1)
    return runs[0].run_id if runs else None
