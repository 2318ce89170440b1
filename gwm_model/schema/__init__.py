"""The world schema: a typed tree of field paths, loaded from ``world.yaml``, and projections of it.

Owns ``world.yaml`` and its loader, ``FieldSpec``/``GroupNode``, ``WorldSchema`` with :func:`project`
(selecting the part of the world a model sees) and the ``Projection`` record. The bottom layer: imports
nothing else of gwm_model.
"""

from gwm_model.schema.periods import PERIOD_DAYS, PERIODS
from gwm_model.schema.projection import Projection
from gwm_model.schema.spec import EntityTemplate, FieldSpec, GroupNode, SchemaError
from gwm_model.schema.world import DEFAULT_SCHEMA_PATH, WorldSchema, default_world, load_schema, project

__all__ = [
    "DEFAULT_SCHEMA_PATH", "PERIODS", "PERIOD_DAYS", "EntityTemplate", "FieldSpec", "GroupNode",
    "Projection", "SchemaError", "WorldSchema", "default_world", "load_schema", "project",
]
