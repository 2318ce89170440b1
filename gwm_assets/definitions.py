"""The one Dagster ``Definitions`` of gwm: ``dagster dev -m gwm_assets.definitions``."""

from __future__ import annotations

import dagster as dg

from gwm_assets.resources import WarehouseResource, WorldSchemaResource
from gwm_assets.world_fields import fields

defs = dg.Definitions(
    assets=[fields],
    resources={
        "warehouse": WarehouseResource(),
        "world": WorldSchemaResource(),
    },
)
