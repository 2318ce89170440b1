"""Curriculum spec: nodes (name, tier, includes, entities, parents, data sources, canvas settings).

Loaded from YAML and validated before anything runs: names unique, parents declared, no cycles,
a tier above every parent's, includes that resolve against the world schema, and every node
either naming its data sources or saying it has none (``data_sources: []``). Errors name the file,
the node and the fix.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from gwm_model.schema import SchemaError, WorldSchema
from gwm_model.schema.projection import Projection

STANDARD_CURRICULUM = Path(__file__).resolve().parents[2] / "curricula" / "standard.yaml"
FREQUENCIES = ("daily", "business", "weekly", "monthly", "quarterly")
NODE_KEYS = {"name", "tier", "description", "include", "exclude", "entities", "parents", "data_sources", "canvas"}


class CurriculumError(SchemaError):
    """A curriculum file that cannot be trained: the message names the file, the node and the fix."""


@dataclass(frozen=True)
class CanvasSettings:
    frequency: str = "weekly"
    start: dt.date | None = dt.date(1990, 1, 1)
    end: dt.date | None = None
    train_fraction: float = 0.8

    def merged(self, overrides: dict, where: str) -> CanvasSettings:
        unknown = set(overrides) - {"frequency", "start", "end", "train_fraction"}
        if unknown:
            raise CurriculumError(f"{where}: unknown canvas keys {sorted(unknown)}. Fix: use frequency, start, end, "
                                  "train_fraction")
        out = replace(self, **overrides)
        if out.frequency not in FREQUENCIES:
            raise CurriculumError(f"{where}: canvas frequency '{out.frequency}' is unknown. Fix: one of "
                                  f"{', '.join(FREQUENCIES)}")
        for name in ("start", "end"):
            value = getattr(out, name)
            if value is not None and not isinstance(value, dt.date):
                raise CurriculumError(f"{where}: canvas {name} {value!r} is not a date. Fix: write YYYY-MM-DD")
        if not 0 < float(out.train_fraction) < 1:
            raise CurriculumError(f"{where}: train_fraction {out.train_fraction} must lie strictly between 0 and 1")
        if out.start and out.end and out.end < out.start:
            raise CurriculumError(f"{where}: canvas end {out.end} is before its start {out.start}: the time axis "
                                  "would be empty. Fix: move end after start")
        return out

    def to_dict(self) -> dict[str, object]:
        return {"frequency": self.frequency, "start": str(self.start) if self.start else None,
                "end": str(self.end) if self.end else None, "train_fraction": self.train_fraction}


@dataclass(frozen=True)
class CurriculumNode:
    name: str
    tier: int
    description: str
    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    entities: dict[str, str | None] = field(default_factory=dict)
    parents: tuple[str, ...] = ()
    data_sources: tuple[str, ...] = ()
    canvas: CanvasSettings = CanvasSettings()

    def projection(self, schema: WorldSchema) -> Projection:
        try:
            return schema.project(list(self.include), exclude=list(self.exclude), entities=self.entities or None)
        except SchemaError as exc:
            raise CurriculumError(f"node '{self.name}': {exc}") from exc


@dataclass(frozen=True)
class Curriculum:
    name: str
    path: Path
    nodes: dict[str, CurriculumNode]
    profiles: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> CurriculumNode:
        return self.nodes[name]

    def order(self) -> list[str]:
        """Node names, parents before children (ties in file order)."""
        done: list[str] = []
        while len(done) < len(self.nodes):
            for name, node in self.nodes.items():
                if name not in done and all(p in done for p in node.parents):
                    done.append(name)
        return done


def _strings(value: object, where: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CurriculumError(f"{where}: '{key}' must be a list of strings, got {value!r}")
    return tuple(value)


def _node(raw: object, defaults: CanvasSettings, where: str) -> CurriculumNode:
    if not isinstance(raw, dict) or "name" not in raw:
        raise CurriculumError(f"{where}: a node is a mapping with at least 'name'")
    where = f"{where} (node '{raw['name']}')"
    unknown = set(raw) - NODE_KEYS
    if unknown:
        raise CurriculumError(f"{where}: unknown keys {sorted(unknown)}. Fix: use {sorted(NODE_KEYS)}")
    if not raw.get("include"):
        raise CurriculumError(f"{where}: no 'include'. A node without includes would silently train the whole "
                              "world. Fix: list its subtrees, or include: ['*'] to mean everything")
    if "data_sources" not in raw:
        raise CurriculumError(f"{where}: no 'data_sources'. Fix: name the sources its data comes from, or write "
                              "data_sources: [] to say it has none yet")
    tier = raw.get("tier", 0)
    if not isinstance(tier, int) or tier < 0:
        raise CurriculumError(f"{where}: tier must be a whole number >= 0, got {tier!r}")
    entities = raw.get("entities") or {}
    if isinstance(entities, list):
        entities = {e: None for e in entities}
    return CurriculumNode(name=str(raw["name"]), tier=tier, description=str(raw.get("description", "")),
                          include=_strings(raw["include"], where, "include"),
                          exclude=_strings(raw.get("exclude") or [], where, "exclude"), entities=dict(entities),
                          parents=_strings(raw.get("parents") or [], where, "parents"),
                          data_sources=_strings(raw["data_sources"] or [], where, "data_sources"),
                          canvas=defaults.merged(raw.get("canvas") or {}, where))


def load_curriculum(path: str | Path = STANDARD_CURRICULUM, schema: WorldSchema | None = None) -> Curriculum:
    """Read and validate a curriculum file; with ``schema``, every node's includes must resolve."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CurriculumError(f"{path}: cannot read the curriculum ({exc})") from exc
    except yaml.YAMLError as exc:
        raise CurriculumError(f"{path}: not valid YAML ({exc}). Fix: correct the syntax") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list) or not doc["nodes"]:
        raise CurriculumError(f"{path}: expected a mapping with a non-empty 'nodes:' list. Fix: see "
                              "curricula/standard.yaml")
    defaults = CanvasSettings().merged(doc.get("canvas") or {}, f"{path}: canvas")
    nodes: dict[str, CurriculumNode] = {}
    for i, raw in enumerate(doc["nodes"]):
        node = _node(raw, defaults, f"{path}: nodes[{i}]")
        if node.name in nodes:
            raise CurriculumError(f"{path}: node '{node.name}' is declared twice. Fix: rename one")
        nodes[node.name] = node
    for node in nodes.values():
        for parent in node.parents:
            if parent not in nodes:
                raise CurriculumError(f"{path}: node '{node.name}' names parent '{parent}', which is not declared. "
                                      f"Fix: declare it or use one of {', '.join(nodes)}")
            if nodes[parent].tier >= node.tier:
                raise CurriculumError(f"{path}: node '{node.name}' (tier {node.tier}) has parent '{parent}' of tier "
                                      f"{nodes[parent].tier}. Fix: a child's tier is above its parents'")
    _check_acyclic(path, nodes)
    curriculum = Curriculum(name=str(doc.get("name", path.stem)), path=path, nodes=nodes,
                            profiles=dict(doc.get("profiles") or {}))
    if schema is not None:
        for node in nodes.values():
            node.projection(schema)
    return curriculum


def _check_acyclic(path: Path, nodes: dict[str, CurriculumNode]) -> None:
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join([*trail[trail.index(name):], name])
            raise CurriculumError(f"{path}: the parents form a cycle: {cycle}. Fix: remove one parent link")
        state[name] = 1
        for parent in nodes[name].parents:
            visit(parent, [*trail, name])
        state[name] = 2

    for name in nodes:
        visit(name, [])
