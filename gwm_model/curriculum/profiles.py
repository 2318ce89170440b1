"""Training profiles: the hyperparameters of every curriculum node, by hardware budget.

A curriculum file carries named profiles (``cpu``, ``h100``, ...). Each profile has a base of four
sections - ``model`` (:class:`ModelConfig` keys), ``train`` (:class:`TrainConfig` keys), ``evaluation``
and ``merge`` - then per-tier overrides (``tiers: {1: {...}}``; a tier without an entry takes the nearest
lower tier's) and per-node overrides (``nodes: {name: {...}}``), applied in that order, one dict merge
per section (``train.masking`` merges key by key too). ``trunk`` holds the overrides of the shared
trunk, which has tier 0's model.

Everything is resolved and checked when the file loads, for every profile and node: unknown keys,
values the configs reject, one model width across the whole DAG (parents' weights are averaged into
their children, so widths must agree) and children that never have fewer layers than a parent.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

from gwm_model.nn.model import ModelConfig
from gwm_model.schema import SchemaError
from gwm_model.training.config import TrainConfig
from gwm_model.training.objectives import MaskingConfig


class CurriculumError(SchemaError):
    """A curriculum file that cannot be trained: the message names the file, the node and the fix."""


MERGE_METHODS = ("mean", "weighted", "ties")
BASELINES = ("persistence", "mean", "ar", "dfm")
SECTIONS = ("model", "train", "evaluation", "merge")
PROFILE_KEYS = ("description", *SECTIONS, "trunk", "tiers", "nodes")
TRUNK_KEYS = ("model", "train", "evaluation")
#: ModelConfig keys that must be equal in every node of a profile (weight averaging needs one width).
SHARED_WIDTH = ("d_model", "n_heads", "ff_mult", "value_channels", "backbone", "n_loops")
TRUNK = "trunk"

#: The profile a curriculum without ``profiles:`` gets: small enough for two CPU cores.
BUILTIN_CPU_PROFILE: dict = {
    "description": "small and fast on two CPU cores (the default)",
    "model": {"d_model": 32, "n_heads": 2, "n_layers": 1, "n_loops": 2},  # heads of 16: see curricula/standard.yaml
    "train": {"context": 12, "horizon": 4, "batch_size": 16, "steps": 120, "lr": 2.0e-3, "warmup_steps": 10,
              "patience": 3, "val_fraction": 0.15},
    "evaluation": {"baselines": ["persistence", "ar"], "max_anchors": 120},
    "merge": {"method": "mean"},
    "trunk": {"train": {"steps": 80}},
    "tiers": {1: {"model": {"n_layers": 2}, "train": {"steps": 120, "lr": 1.0e-3}},
              2: {"model": {"n_layers": 2}, "train": {"lr": 7.0e-4}},
              3: {"model": {"n_layers": 3}, "train": {"steps": 160, "lr": 5.0e-4}}},
}


@dataclass(frozen=True)
class MergeSettings:
    """How a join combines its parents' weights: ``mean``, ``weighted`` or ``ties`` (``ties_density``:
    the share of each parent's largest changes TIES keeps, in (0, 1])."""

    method: str = "mean"
    ties_density: float = 0.2

    def __post_init__(self) -> None:
        if self.method not in MERGE_METHODS:
            raise ValueError(f"unknown merge method '{self.method}'. Fix: use one of {', '.join(MERGE_METHODS)}")
        density = self.ties_density
        if isinstance(density, bool) or not isinstance(density, int | float) or not 0 < density <= 1:
            raise ValueError(f"ties_density must be a number in (0, 1], got {density!r}")
        object.__setattr__(self, "ties_density", float(density))

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class EvaluationSettings:
    """Which baselines a node is scored against, on at most ``max_anchors`` test windows (None: all)."""

    baselines: tuple[str, ...] = ("persistence", "ar")
    max_anchors: int | None = 120

    def __post_init__(self) -> None:
        baselines = (self.baselines,) if isinstance(self.baselines, str) else tuple(self.baselines)
        unknown = [b for b in baselines if b not in BASELINES]
        if unknown:
            raise ValueError(f"unknown baseline(s) {unknown}. Fix: use {', '.join(BASELINES)}")
        object.__setattr__(self, "baselines", baselines)
        anchors = self.max_anchors
        if anchors is not None and (isinstance(anchors, bool) or not isinstance(anchors, int) or anchors < 1):
            raise ValueError(f"max_anchors must be a whole number >= 1 or null, got {anchors!r}")

    def to_dict(self) -> dict[str, object]:
        return {"baselines": list(self.baselines), "max_anchors": self.max_anchors}


@dataclass(frozen=True)
class NodeHyperparameters:
    """Everything that decides how one node (or the trunk) is built, trained, scored and merged."""

    profile: str
    node: str
    model: ModelConfig
    train: TrainConfig
    evaluation: EvaluationSettings
    merge: MergeSettings

    def to_dict(self) -> dict[str, object]:
        """JSON-able, for checkpoint manifests."""
        return {"profile": self.profile, "node": self.node, "model": self.model.to_dict(),
                "train": self.train.to_dict(), "evaluation": self.evaluation.to_dict(),
                "merge": self.merge.to_dict()}


def _known(kind: str) -> tuple[str, ...]:
    if kind == "model":
        return tuple(f.name for f in fields(ModelConfig))
    if kind == "train":
        return tuple(f.name for f in fields(TrainConfig))
    if kind == "masking":
        return tuple(f.name for f in fields(MaskingConfig))
    return tuple(f.name for f in fields(EvaluationSettings if kind == "evaluation" else MergeSettings))


def _types(kind: str) -> dict[str, str]:
    cls = {"model": ModelConfig, "train": TrainConfig, "masking": MaskingConfig}.get(kind)
    return {f.name: str(f.type) for f in fields(cls)} if cls else {"ties_density": "float", "max_anchors": "int"}


def _coerce(value: object, annotation: str) -> object:
    """PyYAML reads ``2e-4`` (no dot) as a string: turn numeric strings into the field's number type."""
    if not isinstance(value, str):
        return value
    try:
        number = float(value)
    except ValueError:
        return value
    if "float" in annotation:
        return number
    if "int" in annotation and number.is_integer():
        return int(number)
    return value


def _section(kind: str, raw: object, where: str) -> dict:
    """One section's overrides, checked for unknown keys and with numeric strings coerced."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise CurriculumError(f"{where}: '{kind}' must be a mapping of {kind} keys, got {raw!r}")
    known = _known(kind)
    unknown = sorted(str(k) for k in set(raw) - set(known))
    if unknown:
        raise CurriculumError(f"{where}: unknown {kind} key(s) {unknown}. Fix: use only {sorted(known)}")
    types = _types(kind)
    out = {key: _coerce(value, types.get(key, "")) for key, value in raw.items()}
    if kind == "train" and "masking" in out:
        out["masking"] = _section("masking", out["masking"], f"{where}, train")
    return copy.deepcopy(out)


def _sections(raw: object, allowed: Sequence[str], where: str) -> dict[str, dict]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise CurriculumError(f"{where}: expected a mapping with {', '.join(allowed)}, got {raw!r}")
    unknown = sorted(str(k) for k in set(raw) - set(allowed))
    if unknown:
        raise CurriculumError(f"{where}: unknown section(s) {unknown}. Fix: use {', '.join(allowed)}")
    return {key: _section(key, raw[key], where) for key in allowed if key in raw}


def _tier_key(key: object, where: str) -> int:
    if isinstance(key, str) and key.strip().isdigit():
        return int(key)
    if isinstance(key, bool) or not isinstance(key, int) or key < 0:
        raise CurriculumError(f"{where}: tiers key {key!r} is not a tier. Fix: key tiers by whole numbers >= 0, "
                              "e.g. tiers: {1: {model: {n_layers: 2}}}")
    return key


def parse_profile(raw: object, where: str, nodes: Mapping[str, object]) -> dict:
    """A profile's YAML mapping -> its normalised form (every key present), or CurriculumError."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise CurriculumError(f"{where}: a profile is a mapping with {', '.join(PROFILE_KEYS)}, got {raw!r}")
    unknown = sorted(str(k) for k in set(raw) - set(PROFILE_KEYS))
    if unknown:
        raise CurriculumError(f"{where}: unknown profile key(s) {unknown}. Fix: use {', '.join(PROFILE_KEYS)}")
    out: dict = {"description": str(raw.get("description") or "")}
    out.update(_sections({k: raw[k] for k in SECTIONS if k in raw}, SECTIONS, where))
    out["trunk"] = _sections(raw.get("trunk"), TRUNK_KEYS, f"{where}, trunk")
    tiers = raw.get("tiers") or {}
    if not isinstance(tiers, Mapping):
        raise CurriculumError(f"{where}: 'tiers' must map tier numbers to overrides, got {tiers!r}")
    out["tiers"] = {}
    for key, body in tiers.items():
        tier = _tier_key(key, where)
        out["tiers"][tier] = _sections(body, SECTIONS, f"{where}, tiers[{tier}]")
    overrides = raw.get("nodes") or {}
    if not isinstance(overrides, Mapping):
        raise CurriculumError(f"{where}: 'nodes' must map node names to overrides, got {overrides!r}")
    out["nodes"] = {}
    for name, body in overrides.items():
        if name not in nodes:
            raise CurriculumError(f"{where}: 'nodes' overrides '{name}', which is not a node of this curriculum. "
                                  f"Fix: use one of {', '.join(nodes)}")
        out["nodes"][str(name)] = _sections(body, SECTIONS, f"{where}, nodes.{name}")
    return out


def profile_to_dict(profile: Mapping) -> dict:
    """The normalised profile written back compactly (empty sections left out); loads to the same."""
    out: dict = {}
    if profile.get("description"):
        out["description"] = profile["description"]
    for key in SECTIONS:
        if profile.get(key):
            out[key] = copy.deepcopy(profile[key])
    for key in ("trunk", "tiers", "nodes"):
        body = {k: copy.deepcopy(v) for k, v in (profile.get(key) or {}).items() if v}
        if body:
            out[key] = body
    return out


def _merge(layers: Sequence[Mapping]) -> dict:
    out: dict = {}
    for layer in layers:
        for key, value in layer.items():
            if key == "masking" and isinstance(out.get(key), dict):
                out[key] = {**out[key], **value}
            else:
                out[key] = copy.deepcopy(value)
    return out


def _build(profile: str, node: str, sections: Mapping[str, dict], where: str) -> NodeHyperparameters:
    built = {}
    for key, make in (("model", ModelConfig.from_dict), ("train", TrainConfig.from_dict),
                      ("evaluation", lambda d: EvaluationSettings(**d)), ("merge", lambda d: MergeSettings(**d))):
        try:
            built[key] = make(dict(sections.get(key) or {}))
        except (TypeError, ValueError) as exc:
            fix = "" if "Fix:" in str(exc) else ". Fix: correct the value in the profile"
            raise CurriculumError(f"{where}: {key}: {exc}{fix}") from exc
    return NodeHyperparameters(profile=profile, node=node, **built)


def tier_overrides(body: Mapping, tier: int) -> Mapping:
    """``tiers[tier]``, or the nearest lower tier's entry when it has none (deeper DAGs keep the deepest)."""
    defined = [k for k in body.get("tiers") or {} if k <= tier]
    return body["tiers"][max(defined)] if defined else {}


def _layers(body: Mapping, tier: int, node: str | None) -> list[Mapping]:
    layers = [body, tier_overrides(body, tier)]
    if node is not None:
        layers.append(body["nodes"].get(node, {}))
    return layers


def resolve_node(profile: str, body: Mapping, node: str, tier: int, source: str) -> NodeHyperparameters:
    """Profile base -> ``tiers[tier]`` -> ``nodes[node]``, section by section."""
    layers = _layers(body, tier, node)
    sections = {key: _merge([layer.get(key, {}) for layer in layers]) for key in SECTIONS}
    return _build(profile, node, sections, f"{source}: profile '{profile}', node '{node}' (tier {tier})")


def resolve_trunk(profile: str, body: Mapping, source: str) -> NodeHyperparameters:
    """The shared trunk: tier 0's model; train and evaluation of tier 0 with ``trunk`` on top."""
    where = f"{source}: profile '{profile}', trunk"
    tier0 = _layers(body, 0, None)
    sections = {key: _merge([layer.get(key, {}) for layer in tier0]) for key in SECTIONS}
    tier0_hp = _build(profile, TRUNK, sections, where)
    trunk = body.get("trunk") or {}
    if trunk.get("model"):
        try:
            model = ModelConfig.from_dict(_merge([sections["model"], trunk["model"]]))
        except ValueError as exc:
            raise CurriculumError(f"{where}: model: {exc}") from exc
        if model != tier0_hp.model:
            raise CurriculumError(f"{where}: trunk.model {trunk['model']} differs from tier 0's model: the trunk's "
                                  "weights start every tier-0 node, so it has tier 0's model. Fix: set model keys "
                                  "in the profile's base or under tiers[0], not under trunk")
    for key in ("train", "evaluation"):
        sections[key] = _merge([sections[key], trunk.get(key, {})])
    return _build(profile, TRUNK, sections, where)


def validate_profile(profile: str, body: Mapping, nodes: Mapping[str, tuple[int, Sequence[str]]],
                     source: str) -> None:
    """Resolve the trunk and every node (``nodes``: name -> (tier, parents)); check width and growth."""
    resolved = {name: resolve_node(profile, body, name, tier, source) for name, (tier, _) in nodes.items()}
    trunk = resolve_trunk(profile, body, source)
    for name, hp in resolved.items():
        for key in SHARED_WIDTH:
            mine, base = getattr(hp.model, key), getattr(trunk.model, key)
            if mine != base:
                raise CurriculumError(
                    f"{source}: profile '{profile}': node '{name}' (tier {nodes[name][0]}) has {key} {mine!r} but "
                    f"tier 0 has {base!r}. Joins average their parents' weights, which needs one width across the "
                    f"whole curriculum: {', '.join(SHARED_WIDTH)} must be equal in every tier and node. Fix: set "
                    f"{key} once, in the profile's base model section")
    for name, (_, parents) in nodes.items():
        if not parents and resolved[name].model.n_layers < trunk.model.n_layers:
            raise CurriculumError(
                f"{source}: profile '{profile}': node '{name}' has n_layers {resolved[name].model.n_layers} but the "
                f"shared trunk (tier 0's model) has {trunk.model.n_layers}. A node without parents starts from the "
                f"trunk's weights and may only grow. Fix: give '{name}' n_layers >= {trunk.model.n_layers}, or set "
                "the smaller n_layers in the profile's base or tiers[0]")
        for parent in parents:
            if parent in resolved and resolved[name].model.n_layers < resolved[parent].model.n_layers:
                raise CurriculumError(
                    f"{source}: profile '{profile}': node '{name}' has n_layers {resolved[name].model.n_layers} but "
                    f"its parent '{parent}' has {resolved[parent].model.n_layers}. A child starts from its parents' "
                    f"weights and may only grow. Fix: give '{name}' n_layers >= "
                    f"{resolved[parent].model.n_layers} (or fewer layers to '{parent}')")
