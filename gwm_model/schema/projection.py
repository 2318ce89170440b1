"""Projections: the part of the world one model sees, selected by path prefix, excludes and entities.

Paths stay canonical end to end: a projection of ``country_us.macro`` holds
``country_us.macro.inflation.headline_cpi``, exactly the path the warehouse and the schema use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

from gwm_model.schema.spec import FieldSpec, GroupNode, SchemaError
from gwm_model.schema.world import WorldSchema, flatten

EntityArg = Mapping[str, str | None] | Iterable[str] | None


def _ancestors(path: str) -> Iterable[str]:
    """``a.b.c`` -> ``a.b.c``, ``a.b``, ``a``."""
    while True:
        yield path
        if "." not in path:
            return
        path = path.rsplit(".", 1)[0]


def _normalise_entities(entities: EntityArg) -> dict[str, str | None]:
    if entities is None:
        return {}
    if isinstance(entities, Mapping):
        return {str(k): (str(v) if v else None) for k, v in entities.items()}
    if isinstance(entities, str):
        return {entities: None}
    return {str(name): None for name in entities}


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
            from gwm_model.schema.loader import closest

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


def project(schema: WorldSchema, include: Iterable[str] | str = ("*",), exclude: Iterable[str] | str = (),
            entities: EntityArg = None) -> Projection:
    """Select fields of ``schema``.

    ``include``: path prefixes (``financial``, ``country_us.macro``) or ``*`` for the whole world;
    each include brings the field at that path and everything below it. ``exclude``: subtrees to
    drop. ``entities``: extra entity instances (``{'firm_NVDA': 'Business'}``, or names whose
    prefix gives the type); each named entity is included whole. Unknown paths raise
    :class:`SchemaError` naming the closest valid paths.
    """
    include = (include,) if isinstance(include, str) else tuple(include)
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    wanted = _normalise_entities(entities)

    extra: list[GroupNode] = []
    typed: dict[str, str] = {}
    for name in sorted(wanted):
        subtree = schema.entity_subtree(name, wanted[name])
        typed[name] = subtree.entity_type or ""
        if name not in schema.entities:
            extra.append(subtree)

    if extra:
        extended = GroupNode(path="", about=schema.root.about, line=0, children=[*schema.root.children, *extra])
        all_fields = flatten(extended)
        top_level = [c.path for c in extended.children]
    else:
        all_fields = list(schema.fields)
        top_level = schema.layers
    known = {f.path for f in all_fields}

    def check(path: str, what: str) -> str:
        path = path.strip()
        if path not in known:
            raise schema.unknown_path(path, extra_paths=known - set(schema.by_path), what=what)
        return path

    if not include and not wanted:
        raise SchemaError("the projection includes nothing. Fix: pass include=['*'] or path prefixes")
    roots: set[str] = set()
    for item in include:
        if item.strip() == "*":
            roots.update(top_level)
        else:
            roots.add(check(item, "include path"))
    roots.update(wanted)
    excluded = {check(item, "exclude path") for item in exclude}
    # an include nested under another include adds nothing
    roots = {r for r in roots if not any(a in roots for a in list(_ancestors(r))[1:])}

    selected: list[FieldSpec] = []
    for spec in all_fields:
        chain = list(_ancestors(spec.path))
        if any(a in excluded for a in chain):
            continue
        if any(a in roots for a in chain):
            selected.append(spec)
    if not selected:
        raise SchemaError(f"the projection include={list(include)} exclude={list(exclude)} selects no fields. "
                          "Fix: remove excludes that cover every include")
    order = {f.path: i for i, f in enumerate(all_fields)}
    kept_roots = tuple(sorted((r for r in roots if r not in excluded), key=order.__getitem__))
    return Projection(
        schema_hash=schema.schema_hash, include=include, exclude=exclude,
        entities=tuple(sorted(typed.items())), roots=kept_roots, fields=tuple(selected),
    )
