"""Curriculum spec: nodes (name, tier, includes, entities, parents, data sources, canvas settings) and
the training profiles that give each node its hyperparameters.

Loaded from YAML and validated before anything runs: names unique, parents declared, no cycles,
a tier above every parent's, includes that resolve against the world schema, every node either
naming its data sources or saying it has none (``data_sources: []``), and every profile resolved
for every node (see :mod:`gwm_model.curriculum.profiles`). Errors name the file, the node and the
fix. Files in the seed's ``plan:``/``stages:``/``builds_on:`` format are converted on load (see
:mod:`gwm_model.curriculum.seed_format`).
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from gwm_model.curriculum.profiles import (
    BUILTIN_CPU_PROFILE,
    TRUNK,
    CurriculumError,
    NodeHyperparameters,
    parse_profile,
    profile_to_dict,
    resolve_node,
    resolve_trunk,
    validate_profile,
)
from gwm_model.curriculum.seed_format import is_seed_document, seed_document
from gwm_model.schema import SchemaError, WorldSchema
from gwm_model.schema.projection import Projection

STANDARD_CURRICULUM = Path(__file__).resolve().parents[2] / "curricula" / "standard.yaml"
FREQUENCIES = ("daily", "business", "weekly", "monthly", "quarterly")
NODE_KEYS = {"name", "tier", "description", "include", "exclude", "entities", "parents", "data_sources", "canvas"}
TOP_KEYS = ("name", "description", "canvas", "default_profile", "profiles", "notes", "nodes")
NODE_NAME = re.compile(r"[A-Za-z0-9_]+")


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
        overrides = dict(overrides)
        for name in ("start", "end"):
            if isinstance(overrides.get(name), str):
                try:
                    overrides[name] = dt.date.fromisoformat(overrides[name])
                except ValueError:
                    pass  # reported below as not a date
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
    """A validated curriculum. ``profiles`` holds each profile in normalised form (see
    :func:`~gwm_model.curriculum.profiles.parse_profile`); ask :meth:`hyperparameters` for a node's."""

    name: str
    path: Path
    nodes: dict[str, CurriculumNode]
    profiles: dict = field(default_factory=dict)
    default_profile: str = "cpu"
    canvas: CanvasSettings = CanvasSettings()
    description: str = ""
    notes: tuple[str, ...] = ()

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

    @property
    def profile_names(self) -> tuple[str, ...]:
        return tuple(self.profiles) or ("cpu",)

    def _profile(self, profile: str | None) -> tuple[str, dict]:
        profiles = self.profiles or {"cpu": parse_profile(BUILTIN_CPU_PROFILE, "builtin cpu profile", self.nodes)}
        name = profile or self.default_profile
        if name not in profiles:
            raise CurriculumError(f"{self.path}: no profile '{name}'. Available: {', '.join(profiles)}. Fix: pick "
                                  "one of those (GWM_PROFILE) or add it under 'profiles:'")
        return name, profiles[name]

    def hyperparameters(self, node: str, profile: str | None = None) -> NodeHyperparameters:
        """``node``'s model, training, evaluation and merge settings under ``profile`` (default: the file's)."""
        if node not in self.nodes:
            raise CurriculumError(f"{self.path}: no node '{node}'. Known: {', '.join(self.nodes)}")
        name, body = self._profile(profile)
        return resolve_node(name, body, node, self.nodes[node].tier, str(self.path))

    def trunk_hyperparameters(self, profile: str | None = None) -> NodeHyperparameters:
        """The shared trunk's settings: tier 0's model, tier 0's training with the profile's ``trunk`` on top."""
        name, body = self._profile(profile)
        return resolve_trunk(name, body, str(self.path))

    def to_dict(self) -> dict[str, object]:
        """The curriculum as plain data in the native format; :func:`load_curriculum_text` reads it back."""
        out: dict[str, object] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["canvas"] = self.canvas.to_dict()
        if self.notes:
            out["notes"] = list(self.notes)
        out["default_profile"] = self.default_profile
        out["profiles"] = {name: profile_to_dict(body) for name, body in self.profiles.items()}
        out["nodes"] = [_node_dict(node, self.canvas) for node in self.nodes.values()]
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=120,
                              allow_unicode=True)


def _node_dict(node: CurriculumNode, defaults: CanvasSettings) -> dict[str, object]:
    out: dict[str, object] = {"name": node.name, "tier": node.tier}
    if node.description:
        out["description"] = node.description
    out["include"] = list(node.include)
    if node.exclude:
        out["exclude"] = list(node.exclude)
    if node.entities:
        out["entities"] = dict(node.entities)
    if node.parents:
        out["parents"] = list(node.parents)
    out["data_sources"] = list(node.data_sources)
    mine, base = node.canvas.to_dict(), defaults.to_dict()
    canvas = {key: value for key, value in mine.items() if base[key] != value}
    if canvas:
        out["canvas"] = canvas
    return out


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
    if not isinstance(raw["name"], str) or not NODE_NAME.fullmatch(raw["name"]) or raw["name"] == TRUNK:
        raise CurriculumError(f"{where}: the node name must use only letters, digits and underscores (it names "
                              f"the node's assets and checkpoints) and cannot be '{TRUNK}' (the shared trunk's "
                              "name). Fix: rename it")
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
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CurriculumError(f"{path}: cannot read the curriculum ({exc})") from exc
    return load_curriculum_text(text, source=path, schema=schema)


def load_curriculum_text(text: str, source: str | Path = "<text>", schema: WorldSchema | None = None) -> Curriculum:
    """:func:`load_curriculum` on YAML text; ``source`` names it in errors and becomes ``Curriculum.path``."""
    path = Path(source)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CurriculumError(f"{path}: not valid YAML ({exc}). Fix: correct the syntax") from exc
    if is_seed_document(doc):
        doc = seed_document(doc, str(path))
    return _from_document(doc, path, schema)


def _from_document(doc: object, path: Path, schema: WorldSchema | None) -> Curriculum:
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list) or not doc["nodes"]:
        raise CurriculumError(f"{path}: expected a mapping with a non-empty 'nodes:' list. Fix: see "
                              "curricula/standard.yaml")
    unknown = sorted(str(k) for k in set(doc) - set(TOP_KEYS))
    if unknown:
        raise CurriculumError(f"{path}: unknown top-level key(s) {unknown}. Fix: use {', '.join(TOP_KEYS)} (or "
                              "the seed format's name/defaults/plan)")
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
    profiles, default_profile = _profiles(doc, path, nodes)
    notes = doc.get("notes") or []
    curriculum = Curriculum(name=str(doc.get("name") or path.stem), path=path, nodes=nodes, profiles=profiles,
                            default_profile=default_profile, canvas=defaults,
                            description=str(doc.get("description") or ""),
                            notes=tuple(str(n) for n in (notes if isinstance(notes, list) else [notes])))
    if schema is not None:
        for node in nodes.values():
            node.projection(schema)
    return curriculum


def _profiles(doc: dict, path: Path, nodes: dict[str, CurriculumNode]) -> tuple[dict[str, dict], str]:
    raw = doc.get("profiles")
    if raw is not None and not isinstance(raw, dict):
        raise CurriculumError(f"{path}: 'profiles' must map profile names to profiles, got {raw!r}")
    raw = raw or {"cpu": copy.deepcopy(BUILTIN_CPU_PROFILE)}
    profiles = {str(name): parse_profile(body, f"{path}: profile '{name}'", nodes) for name, body in raw.items()}
    default = doc.get("default_profile") or ("cpu" if "cpu" in profiles else next(iter(profiles)))
    if default not in profiles:
        raise CurriculumError(f"{path}: default_profile '{default}' is not defined. Available: "
                              f"{', '.join(profiles)}. Fix: name one of those or add it under 'profiles:'")
    shape = {name: (node.tier, node.parents) for name, node in nodes.items()}
    for name, body in profiles.items():
        validate_profile(name, body, shape, str(path))
    return profiles, str(default)


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
