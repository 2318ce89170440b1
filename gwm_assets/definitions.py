"""The one Dagster ``Definitions`` of gwm: ``dagster dev -m gwm_assets.definitions``."""

from __future__ import annotations

import dagster as dg

from gwm_assets.automation import JOBS, SCHEDULES, SENSORS
from gwm_assets.canvas_assets import CANVAS_ASSETS
from gwm_assets.check_assets import CHECKS
from gwm_assets.coverage_assets import coverage
from gwm_assets.deployment import executor_from_env
from gwm_assets.observation_assets import observations, source_series
from gwm_assets.resources import SourceSettings, TrainingResource, WarehouseResource, WorldSchemaResource
from gwm_assets.source_assets import SOURCE_ASSETS
from gwm_assets.training_assets import TRAINING_ASSETS
from gwm_assets.world_fields import fields

DATA_ASSETS = [fields, *SOURCE_ASSETS, source_series, observations, coverage, *CANVAS_ASSETS]
ASSETS = [*DATA_ASSETS, *TRAINING_ASSETS]
RESOURCES = {
    "warehouse": WarehouseResource(),
    "world": WorldSchemaResource(),
    "settings": SourceSettings(),
    "training": TrainingResource(),
}

defs = dg.Definitions(assets=ASSETS, asset_checks=CHECKS, resources=RESOURCES,
                      executor=executor_from_env(),  # GWM_EXECUTOR: multiprocess (default) or k8s
                      jobs=JOBS, schedules=SCHEDULES, sensors=SENSORS)  # gwm_assets/automation.py
