"""Typed records of the world schema: fields, groups and entity templates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gwm_model.schema.periods import PERIOD_DAYS

FieldKind = Literal["leaf", "coarse"]


class SchemaError(ValueError):
    """A schema file or a projection is invalid. The message names the file, line, path and fix."""


@dataclass(frozen=True)
class FieldSpec:
    """One field of the world: a canvas region that holds one real-world quantity.

    ``kind`` is ``leaf`` for a declared quantity and ``coarse`` for the summary field that sits
    at every subtree path (``country_us.macro``) and carries information between levels.
    """

    path: str
    kind: FieldKind
    period: str
    loss_weight: float
    unit: str
    description: str
    h: int
    w: int
    is_output: bool
    entity: str | None = None
    entity_type: str | None = None
    line: int = 0

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def layer(self) -> str:
        return self.path.split(".", 1)[0]

    @property
    def parent(self) -> str | None:
        return self.path.rsplit(".", 1)[0] if "." in self.path else None

    @property
    def depth(self) -> int:
        return self.path.count(".")

    @property
    def area(self) -> int:
        return self.h * self.w

    @property
    def period_days(self) -> float:
        return PERIOD_DAYS[self.period]

    @property
    def effective_loss_weight(self) -> float:
        """Weight the training loss gives this field: zero for input-only (conditioning) fields."""
        return self.loss_weight if self.is_output else 0.0

    def as_row(self) -> dict[str, object]:
        return {
            "path": self.path,
            "layer": self.layer,
            "parent": self.parent,
            "kind": self.kind,
            "period": self.period,
            "period_days": self.period_days,
            "loss_weight": self.loss_weight,
            "unit": self.unit,
            "description": self.description,
            "h": self.h,
            "w": self.w,
            "is_output": self.is_output,
            "entity": self.entity,
            "entity_type": self.entity_type,
        }


@dataclass
class GroupNode:
    """A subtree of the world (or of an entity template). Its coarse field has the same path."""

    path: str
    about: str
    line: int
    children: list[GroupNode | FieldSpec] = field(default_factory=list)
    entity: str | None = None
    entity_type: str | None = None

    def leaves(self) -> list[FieldSpec]:
        out: list[FieldSpec] = []
        for child in self.children:
            out.extend(child.leaves() if isinstance(child, GroupNode) else [child])
        return out


@dataclass(frozen=True)
class EntityTemplate:
    """A typed entity (Business, Country, ...) that the world instantiates by name (``firm_AAPL``)."""

    name: str
    prefix: str
    about: str
    line: int
    body: GroupNode  # paths relative to the instance root ("" is the root)
