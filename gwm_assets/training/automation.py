"""When the curriculum trains: a person starts ``train_curriculum``, or the opt-in ``weekly_training`` schedule.

Training never starts by itself: no automation condition and no refresh job selects the ``training``
group. ``weekly_training`` is stopped unless ``GWM_TRAINING_POLICY=weekly`` (or a person switches it on in
the UI); its runs carry the tag ``gwm/policy=weekly_training``.
"""

import os
from datetime import UTC, datetime

import dagster as dg

from gwm_assets.automation.policy import POLICY_TAG, TRAINING, TRIGGER_TAG, running_run

TRAINING_POLICY_ENV = "GWM_TRAINING_POLICY"

train_curriculum = dg.define_asset_job(
    "train_curriculum", selection=TRAINING,
    description="Train the curriculum (train/trunk and train/<node>) on the current canvases. Started by a "
                "person, or by the weekly_training schedule when it is switched on; nothing else starts it.")


def training_policy() -> str:
    """``GWM_TRAINING_POLICY``: ``manual`` (default: a person starts training) or ``weekly``."""
    value = os.environ.get(TRAINING_POLICY_ENV, "manual").strip().lower() or "manual"
    if value not in ("manual", "weekly"):
        raise ValueError(f"{TRAINING_POLICY_ENV}={value!r}: use 'manual' (default) or 'weekly'")
    return value


def weekly_training_schedule(policy: str | None = None) -> dg.ScheduleDefinition:
    """The opt-in training policy: Saturdays 02:00 New York time, after Friday's refreshes. It starts
    STOPPED unless the policy (``GWM_TRAINING_POLICY``) is ``weekly``; a person can switch it on or off
    in the UI (Automation -> weekly_training)."""
    policy = training_policy() if policy is None else policy
    status = dg.DefaultScheduleStatus.RUNNING if policy == "weekly" else dg.DefaultScheduleStatus.STOPPED

    @dg.schedule(name="weekly_training", cron_schedule="0 2 * * 6", execution_timezone="America/New_York",
                 job=train_curriculum, default_status=status,
                 description="Opt-in training policy: trains the curriculum every Saturday at 02:00 New York time. "
                             "Stopped unless GWM_TRAINING_POLICY=weekly; a person switches it on here. Its runs "
                             "carry the tag gwm/policy=weekly_training.")
    def weekly_training(context: dg.ScheduleEvaluationContext):
        running = running_run(context.instance, train_curriculum.name)
        if running is not None:
            return dg.SkipReason(f"train_curriculum: run {running} is still queued or running")
        when = context.scheduled_execution_time or datetime.now(UTC)
        return dg.RunRequest(run_key=f"weekly_training:{when.isoformat()}",
                             tags={TRIGGER_TAG: "schedule:weekly_training", POLICY_TAG: "weekly_training"})

    return weekly_training


TRAINING_JOBS = [train_curriculum]
TRAINING_SCHEDULES = [weekly_training_schedule()]
