"""The compiled world: every field (leaf and coarse) in canonical order, entity templates, lookups, and
:func:`project`, which selects the part of the world one model sees (a :class:`Projection`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from functools import cached_property, lru_cache
from pathlib import Path

from gwm_model.schema.loader import closest, instantiate, read_schema_file
from gwm_model.schema.periods import median_period
from gwm_model.schema.projection import Projection
from gwm_model.schema.spec import EntityTemplate, FieldSpec, GroupNode, SchemaError

DEFAULT_SCHEMA_PATH = Path(__file__).with_name("world.yaml")
COARSE_UNIT = "latent"

EntityArg = Mapping[str, str | None] | Iterable[str] | None


def coarse_field(group: GroupNode) -> FieldSpec:
    """The 1x1 summary field at a subtree path: latent, never a training target.

    Its period is the median of the subtree's leaf periods, so a slow subtree has a slow summary.
    """
    return FieldSpec(
        path=group.path, kind="coarse", period=median_period([f.period for f in group.leaves()]),
        loss_weight=0.0, unit=COARSE_UNIT, description=group.about, h=1, w=1, is_output=False,
        entity=group.entity, entity_type=group.entity_type, line=group.line,
    )


def flatten(node: GroupNode) -> list[FieldSpec]:
    """Pre-order: a group's coarse field, then its entries in file order (the canonical order)."""
    out: list[FieldSpec] = []
    if node.path:
        out.append(coarse_field(node))
    for child in node.children:
        out.extend(flatten(child) if isinstance(child, GroupNode) else [child])
    return out


class WorldSchema:
    """The world field tree loaded from a schema file.

    ``fields`` lists every leaf and coarse field in canonical order; ``entities`` the entity
    instances the default world carries (``country_us`` -> ``Country``). Use :meth:`project` to
    select the part of the world a model sees.
    """

    def __init__(self, source: str, text: str, version: int, units: dict[str, str],
                 templates: dict[str, EntityTemplate], root: GroupNode):
        self.source = source
        self.version = version
        self.units = dict(units)
        self.templates = dict(templates)
        self.root = root
        self.fields: tuple[FieldSpec, ...] = tuple(flatten(root))
        self.by_path: dict[str, FieldSpec] = {}
        for spec in self.fields:
            if spec.path in self.by_path:  # only reachable through an instance clashing with a layer
                raise SchemaError(f"{source}:{spec.line} at '{spec.path}': duplicate path. "
                                  "Fix: rename the layer or the entity instance")
            self.by_path[spec.path] = spec
        if COARSE_UNIT not in self.units:
            raise SchemaError(f"{source}: the unit '{COARSE_UNIT}' (used by coarse fields) is not declared. "
                              f"Fix: add '{COARSE_UNIT}: <meaning>' under 'units:'")
        self.entities: dict[str, str] = {
            child.path: child.entity_type for child in root.children
            if isinstance(child, GroupNode) and child.entity_type
        }
        self._source_text = text

    # -- lookups ------------------------------------------------------------------------------
    @property
    def leaves(self) -> list[FieldSpec]:
        return [f for f in self.fields if f.kind == "leaf"]

    @property
    def coarse(self) -> list[FieldSpec]:
        return [f for f in self.fields if f.kind == "coarse"]

    @property
    def layers(self) -> list[str]:
        return [child.path for child in self.root.children]

    def __contains__(self, path: str) -> bool:
        return path in self.by_path

    def __len__(self) -> int:
        return len(self.fields)

    def field(self, path: str) -> FieldSpec:
        try:
            return self.by_path[path]
        except KeyError:
            raise self.unknown_path(path) from None

    def unknown_path(self, path: str, extra_paths=(), what: str = "field path") -> SchemaError:
        candidates = list(self.by_path) + list(extra_paths)
        near = closest(path, candidates)
        hint = f" Closest valid paths: {', '.join(near)}." if near else ""
        head = path.split(".", 1)[0]
        for type_name, template in self.templates.items():
            if head.startswith(template.prefix) and head not in self.entities:
                hint += (f" '{head}' is not in the default world; declare it as an entity, "
                         f"e.g. entities={{'{head}': '{type_name}'}}.")
        return SchemaError(f"unknown {what} '{path}'.{hint}")

    def template_for(self, entity_name: str) -> EntityTemplate:
        for template in self.templates.values():
            if entity_name.startswith(template.prefix):
                return template
        prefixes = ", ".join(f"{t.prefix}* ({t.name})" for t in self.templates.values())
        raise SchemaError(f"entity '{entity_name}' has no known type. Fix: name it with one of {prefixes}, "
                          "or pass its type explicitly")

    def entity_subtree(self, name: str, type_name: str | None = None) -> GroupNode:
        """The subtree of entity ``name``: the default world's own, or a new instance of its type."""
        if type_name is not None and type_name not in self.templates:
            near = closest(type_name, self.templates)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise SchemaError(f"unknown entity type '{type_name}'{hint}. Fix: use one of {sorted(self.templates)}")
        if name in self.entities:
            if type_name and self.entities[name] != type_name:
                raise SchemaError(f"entity '{name}' is a {self.entities[name]} in the world, not a {type_name}")
            return next(c for c in self.root.children if isinstance(c, GroupNode) and c.path == name)
        template = self.templates[type_name] if type_name else self.template_for(name)
        if not name.startswith(template.prefix) or not name[len(template.prefix):]:
            raise SchemaError(f"a {template.name} entity must be named '{template.prefix}<id>', got '{name}'")
        if name in self.by_path:
            raise SchemaError(f"entity name '{name}' clashes with the world layer of that name")
        label = name[len(template.prefix):]
        return instantiate(template, name, label=label, about=f"{label}: {template.about}", line=template.line)

    # -- identity -----------------------------------------------------------------------------
    @cached_property
    def schema_hash(self) -> str:
        """Content hash of the compiled fields (not of formatting or comments in the file)."""
        payload = json.dumps([f.as_row() for f in self.fields], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def project(self, include: Iterable[str] | str = ("*",), exclude: Iterable[str] | str = (),
                entities: EntityArg = None) -> Projection:
        """The part of this world a model sees: see :func:`project`."""
        return project(self, include=include, exclude=exclude, entities=entities)


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


def load_schema(path: str | Path | None = None) -> WorldSchema:
    """Load and validate a world schema file (the packaged ``world.yaml`` by default)."""
    path = Path(path) if path is not None else DEFAULT_SCHEMA_PATH
    if not path.exists():
        raise SchemaError(f"{path}: schema file not found. Fix: point GWM_SCHEMA or the path at a world.yaml")
    text, version, units, templates, root = read_schema_file(path)
    return WorldSchema(str(path), text, version, units, templates, root)


@lru_cache(maxsize=4)
def _cached(path: str, mtime_ns: int) -> WorldSchema:
    return load_schema(path)


def default_world(path: str | Path | None = None) -> WorldSchema:
    """The world schema, loaded once per process (reloaded when the file changes)."""
    resolved = Path(path) if path is not None else DEFAULT_SCHEMA_PATH
    mtime = resolved.stat().st_mtime_ns if resolved.exists() else 0
    return _cached(str(resolved), mtime)
