"""The world schema as a Dagster resource, so a run can point at another schema file."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from gwm_assets.resources.paths import schema_path
from gwm_model.schema import WorldSchema, default_world


class WorldSchemaResource(dg.ConfigurableResource):
    """The packaged ``gwm_model/schema/world.yaml`` unless ``schema_path`` (or ``GWM_SCHEMA``) is set."""

    schema_path: str = Field(default_factory=lambda: str(schema_path() or ""),
                             description="world schema YAML; empty = the packaged world.yaml")

    def load(self) -> WorldSchema:
        return default_world(self.schema_path or None)
