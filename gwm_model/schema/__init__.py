"""The world schema: a typed tree of field paths, loaded from ``world.yaml``."""

from gwm_model.schema.periods import PERIOD_DAYS, PERIODS
from gwm_model.schema.projection import Projection, project
from gwm_model.schema.spec import EntityTemplate, FieldSpec, GroupNode, SchemaError
from gwm_model.schema.world import DEFAULT_SCHEMA_PATH, WorldSchema, default_world, load_schema

__all__ = [
    "DEFAULT_SCHEMA_PATH", "PERIODS", "PERIOD_DAYS", "EntityTemplate", "FieldSpec", "GroupNode",
    "Projection", "SchemaError", "WorldSchema", "default_world", "load_schema", "project",
]
