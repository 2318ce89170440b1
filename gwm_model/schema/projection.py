"""Projections: the part of the world one model sees, selected by path prefix, excludes and entities.

This module holds the :class:`Projection` record; :func:`gwm_model.schema.world.project` (also
``WorldSchema.project``) makes one by walking the world's tree.

Paths stay canonical end to end: a projection of ``country_us.macro`` holds
``country_us.macro.inflation.headline_cpi``, exactly the path the warehouse and the schema use.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

from gwm_model.schema.loader import closest
from gwm_model.schema.spec import FieldSpec, SchemaError


@dataclass(frozen=True)
class Projection:
    """An ordered selection of world fields (canonical order), with what selected it."""

    schema_hash: str
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    entities: tuple[tuple[str, str], ...]
    roots: tuple[str, ...]
    fields: tuple[FieldSpec, ...]

    @cached_property
    def paths(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.fields)

    @cached_property
    def index_of(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.paths)}

    def __len__(self) -> int:
        return len(self.fields)

    def __contains__(self, path: str) -> bool:
        return path in self.index_of

    def field(self, path: str) -> FieldSpec:
        try:
            return self.fields[self.index_of[path]]
        except KeyError:
            near = closest(path, self.paths)
            hint = f" Closest paths in this projection: {', '.join(near)}." if near else ""
            raise SchemaError(f"'{path}' is not in this projection.{hint}") from None

    @property
    def leaves(self) -> list[FieldSpec]:
        return [f for f in self.fields if f.kind == "leaf"]

    @property
    def coarse(self) -> list[FieldSpec]:
        return [f for f in self.fields if f.kind == "coarse"]

    @property
    def positions(self) -> int:
        """Canvas positions per time step (sum of footprints)."""
        return sum(f.area for f in self.fields)

    @cached_property
    def projection_hash(self) -> str:
        text = self.schema_hash + "\n" + "\n".join(self.paths)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def summary(self) -> dict[str, object]:
        return {
            "include": list(self.include), "exclude": list(self.exclude),
            "entities": dict(self.entities), "fields": len(self.fields), "leaves": len(self.leaves),
            "coarse": len(self.coarse), "positions": self.positions, "schema_hash": self.schema_hash,
        }
