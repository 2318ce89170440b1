"""The seed's curriculum format (``name``, ``defaults``, ``plan`` of groups with ``stages``), read into ours.

A file with a top-level ``plan:`` is converted to the native document (``nodes:`` plus profiles) before
the usual validation runs:

* each stage becomes a node, named by its ``name`` or ``<group>_<first three words of its description>``;
* ``builds_on`` names earlier groups; every stage of those groups becomes a parent of every stage of
  this group, unless the stage lists its own ``parents:`` (node names). No ``builds_on``: no parents.
  A node's tier is one above its highest parent's;
* ``include`` is required (``['*']`` means everything): a stage never silently trains the whole world;
* ``datasets`` become ``data_sources`` through :data:`DATASET_SOURCES` (``datasets: []`` for none);
* ``defaults`` and per-stage ``d_model``/``n_layers``/``n_loops``/``n_steps``/``lr``/``batch_size`` become
  the profile ``seed`` (the default), per stage as node overrides; ``H``/``W`` are recorded as notes
  (our canvas sizes its layout itself). The built-in ``cpu`` profile is added too.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping

from gwm_model.curriculum.profiles import BUILTIN_CPU_PROFILE, CurriculumError

#: The seed's dataset names -> our data source names (other names are kept as they are).
DATASET_SOURCES = {"yahoo_finance": "yahoo", "yahoo_commodities": "yahoo", "fred_rates": "fred",
                   "fred_macro": "fred", "news_embeddings": "news", "pmi": "pmi", "earnings": "earnings",
                   "tabular": "tabular"}
SEED_KEYS = ("name", "description", "defaults", "plan", "canvas", "profiles", "default_profile")
HYPER_KEYS = ("d_model", "n_layers", "n_loops", "n_steps", "lr", "batch_size")
DEFAULT_KEYS = (*HYPER_KEYS, "H", "W")
GROUP_KEYS = ("name", "description", "builds_on", "stages")
STAGE_KEYS = ("name", "description", "include", "exclude", "entities", "datasets", "parents", "canvas",
              *DEFAULT_KEYS)
SEED_PROFILE = "seed"


def is_seed_document(doc: object) -> bool:
    return isinstance(doc, Mapping) and "plan" in doc


def _check_keys(raw: object, allowed: tuple[str, ...], where: str, what: str) -> Mapping:
    if not isinstance(raw, Mapping):
        raise CurriculumError(f"{where}: {what} must be a mapping, got {raw!r}")
    unknown = sorted(str(k) for k in set(raw) - set(allowed))
    if unknown:
        raise CurriculumError(f"{where}: unknown {what} key(s) {unknown}. Fix: use {', '.join(allowed)}")
    return raw


def _names(value: object, where: str, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CurriculumError(f"{where}: '{key}' must be a name or a list of names, got {value!r}")
    return list(value)


def _hyper(raw: Mapping) -> dict:
    """Seed hyperparameter keys -> profile sections (only the keys given)."""
    model = {key: raw[key] for key in ("d_model", "n_layers", "n_loops") if key in raw}
    train = {ours: raw[theirs] for theirs, ours in (("n_steps", "steps"), ("lr", "lr"), ("batch_size", "batch_size"))
             if theirs in raw}
    return {key: value for key, value in (("model", model), ("train", train)) if value}


def _slug(text: str) -> str:
    return "_".join(re.findall(r"[a-z0-9]+", text.lower())[:3])


def _stage_names(plan: list, reserved: set[str]) -> list[list[str]]:
    """Node names for every stage: its own ``name``, else ``<group>_<slug>``, made unique in file order."""
    taken = set(reserved)
    out: list[list[str]] = []
    for group in plan:
        names = []
        for i, stage in enumerate(group["stages"]):
            if stage.get("name"):
                names.append(str(stage["name"]))
                continue
            slug = _slug(str(stage.get("description") or ""))
            base = f"{group['name']}_{slug}" if slug else f"{group['name']}_{i + 1}"
            base = re.sub(r"[^A-Za-z0-9_]+", "_", base)
            name, k = base, 2
            while name in taken:
                name, k = f"{base}_{k}", k + 1
            taken.add(name)
            names.append(name)
        out.append(names)
    return out


def tiers_from_parents(parents: dict[str, list[str]], where: str) -> dict[str, int]:
    """Each node's tier: 0 without parents, else one above its highest parent (a cycle is an error)."""
    tiers: dict[str, int] = {}
    visiting: list[str] = []

    def tier(name: str) -> int:
        if name in tiers:
            return tiers[name]
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name):], name])
            raise CurriculumError(f"{where}: the parents form a cycle: {cycle}. Fix: remove one parent link")
        visiting.append(name)
        tiers[name] = 1 + max((tier(p) for p in parents[name]), default=-1)
        visiting.pop()
        return tiers[name]

    for name in parents:
        tier(name)
    return tiers


def seed_document(doc: Mapping, source: str) -> dict:
    """The seed-format mapping ``doc`` as a native curriculum document (see the module docstring)."""
    _check_keys(doc, SEED_KEYS, source, "top-level")
    defaults = dict(_check_keys(doc.get("defaults") or {}, DEFAULT_KEYS, f"{source}: defaults", "defaults"))
    plan = doc.get("plan")
    if not isinstance(plan, list) or not plan:
        raise CurriculumError(f"{source}: 'plan' must be a non-empty list of groups ({{name, stages}}). Fix: see "
                              "curricula/seed_example.yaml")
    groups: list[dict] = []
    for g, group in enumerate(plan):
        where = f"{source}: plan[{g}]"
        _check_keys(group, GROUP_KEYS, where, "group")
        if not group.get("name") or not isinstance(group["name"], str):
            raise CurriculumError(f"{where}: a group needs a 'name' (builds_on refers to groups by name)")
        if any(group["name"] == other["name"] for other in groups):
            raise CurriculumError(f"{where}: group '{group['name']}' is declared twice. Fix: rename one")
        stages = group.get("stages")
        if not isinstance(stages, list) or not stages:
            raise CurriculumError(f"{where} (group '{group['name']}'): no 'stages'. Fix: list at least one stage")
        for i, stage in enumerate(stages):
            _check_keys(stage, STAGE_KEYS, f"{where} (group '{group['name']}'), stages[{i}]", "stage")
        groups.append(dict(group))
    explicit = {str(s["name"]) for g in groups for s in g["stages"] if s.get("name")}
    names = _stage_names(groups, explicit)
    members = {g["name"]: n for g, n in zip(groups, names, strict=True)}
    all_names = [n for group_names in names for n in group_names]

    nodes: list[dict] = []
    parents: dict[str, list[str]] = {}
    notes: list[str] = []
    seed_profile: dict = _hyper(defaults)
    seed_profile["description"] = "the file's defaults and per-stage settings"
    seed_profile["nodes"] = {}
    for key in ("H", "W"):
        if key in defaults:
            notes.append(f"defaults {key}={defaults[key]} ignored: the canvas layout sizes itself")
    for g, group in enumerate(groups):
        builds_on = _names(group.get("builds_on"), f"{source}: plan[{g}] (group '{group['name']}')", "builds_on")
        inherited: list[str] = []
        earlier = [other["name"] for other in groups[:g]]
        for target in builds_on:
            if target not in members:
                raise CurriculumError(f"{source}: group '{group['name']}' builds on '{target}', which is not a group "
                                      f"of this plan. Known groups: {', '.join(members)}. Fix: name one of those")
            if target not in earlier:
                raise CurriculumError(f"{source}: group '{group['name']}' builds on '{target}', which is not declared "
                                      f"before it. Fix: move group '{target}' above '{group['name']}'")
            inherited += [n for n in members[target] if n not in inherited]
        for i, (stage, name) in enumerate(zip(group["stages"], names[g], strict=True)):
            where = f"{source}: group '{group['name']}', stage {i} ('{name}')"
            if not stage.get("include"):
                raise CurriculumError(f"{where}: no 'include'. The seed's loader trained such a stage on the whole "
                                      "world without saying so. Fix: list its subtrees, or write include: ['*'] "
                                      "to mean everything")
            if "datasets" not in stage:
                raise CurriculumError(f"{where}: no 'datasets'. Fix: name the datasets it learns from, or write "
                                      "datasets: [] to say it has none yet")
            own = _names(stage.get("parents"), where, "parents") if "parents" in stage else None
            for parent in own or []:
                if parent not in all_names:
                    raise CurriculumError(f"{where}: parent '{parent}' is not a stage of this plan. Fix: use one of "
                                          f"{', '.join(all_names)}")
            parents[name] = own if own is not None else list(inherited)
            sources: list[str] = []
            for dataset in _names(stage["datasets"], where, "datasets"):
                mapped = DATASET_SOURCES.get(dataset, dataset)
                if mapped not in sources:
                    sources.append(mapped)
            node = {"name": name, "description": str(stage.get("description") or ""),
                    "include": copy.deepcopy(stage["include"]), "data_sources": sources}
            for key in ("exclude", "entities", "canvas"):
                if stage.get(key):
                    node[key] = copy.deepcopy(stage[key])
            nodes.append(node)
            overrides = _hyper(stage)
            if overrides:
                seed_profile["nodes"][name] = overrides
            for key in ("H", "W"):
                if key in stage:
                    notes.append(f"stage '{name}' {key}={stage[key]} ignored: the canvas layout sizes itself")
    tiers = tiers_from_parents(parents, source)
    for node in nodes:
        node["tier"] = tiers[node["name"]]
        node["parents"] = parents[node["name"]]
    profiles = {SEED_PROFILE: seed_profile, "cpu": copy.deepcopy(BUILTIN_CPU_PROFILE)}
    extra = doc.get("profiles") or {}
    if not isinstance(extra, Mapping):
        raise CurriculumError(f"{source}: 'profiles' must map profile names to profiles, got {extra!r}")
    profiles.update(copy.deepcopy(dict(extra)))
    out = {"name": doc.get("name") or None, "nodes": nodes, "profiles": profiles,
           "default_profile": doc.get("default_profile") or SEED_PROFILE, "notes": notes}
    for key in ("description", "canvas"):
        if doc.get(key):
            out[key] = copy.deepcopy(doc[key])
    return out
