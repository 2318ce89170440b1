"""The one Dagster ``Definitions`` of gwm: ``dagster dev -m gwm_assets.definitions``."""

from __future__ import annotations

import dagster as dg

from gwm_assets.canvas_assets import CANVAS_ASSETS
from gwm_assets.check_assets import CHECKS
from gwm_assets.coverage_assets import coverage
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

defs = dg.Definitions(assets=ASSETS, asset_checks=CHECKS, resources=RESOURCES)
