"""The one Dagster ``Definitions`` of gwm: ``dagster dev -m gwm_assets.definitions``.

The only module at the top of the package: it wires the domain folders (each declares its assets,
their checks and their automation) with the resources. See the README's architecture section.
"""

from __future__ import annotations

import dagster as dg

from gwm_assets.automation.conditions import follow_sources
from gwm_assets.canvases.assets import CANVAS_ASSETS
from gwm_assets.coverage.assets import coverage, coverage_plan
from gwm_assets.fields.assets import fields
from gwm_assets.forecasts.assets import FORECAST_ASSETS
from gwm_assets.observations.assets import observations, source_series
from gwm_assets.observations.checks import OBSERVATION_CHECKS
from gwm_assets.resources.deployment import executor_from_env
from gwm_assets.resources.sources import SourceSettings
from gwm_assets.resources.training import TrainingResource
from gwm_assets.resources.warehouse import WarehouseResource
from gwm_assets.resources.world import WorldSchemaResource
from gwm_assets.sources.assets import SOURCE_ASSETS
from gwm_assets.sources.automation import REFRESH_SCHEDULES, SOURCE_JOBS, SOURCE_SENSORS
from gwm_assets.sources.checks import SOURCE_CHECKS
from gwm_assets.training.assets import TRAINING_ASSETS
from gwm_assets.training.automation import TRAINING_JOBS, TRAINING_SCHEDULES

DATA_ASSETS = [fields, *SOURCE_ASSETS, source_series, observations, coverage, coverage_plan, *CANVAS_ASSETS]
ASSETS = [*DATA_ASSETS, *TRAINING_ASSETS, *FORECAST_ASSETS]
CHECKS = [*SOURCE_CHECKS, *OBSERVATION_CHECKS]
JOBS = [*SOURCE_JOBS, *TRAINING_JOBS]
SCHEDULES = [*REFRESH_SCHEDULES, *TRAINING_SCHEDULES]
SENSORS = [*SOURCE_SENSORS, follow_sources]
RESOURCES = {
    "warehouse": WarehouseResource(),
    "world": WorldSchemaResource(),
    "settings": SourceSettings(),
    "training": TrainingResource(),
}

defs = dg.Definitions(assets=ASSETS, asset_checks=CHECKS, resources=RESOURCES,
                      executor=executor_from_env(),  # GWM_EXECUTOR: multiprocess (default) or k8s
                      jobs=JOBS, schedules=SCHEDULES, sensors=SENSORS)
