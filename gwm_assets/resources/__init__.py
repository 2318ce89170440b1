"""Dagster resources of the gwm code location."""

from gwm_assets.resources.sources import SourceSettings
from gwm_assets.resources.training import TrainingResource
from gwm_assets.resources.warehouse import WarehouseResource
from gwm_assets.resources.world import WorldSchemaResource

__all__ = ["SourceSettings", "TrainingResource", "WarehouseResource", "WorldSchemaResource"]
