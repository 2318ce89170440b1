"""Design a curriculum for a goal from the datasets at hand: an LLM when one is configured, else offline.

:func:`build_curriculum` returns a :class:`CurriculumDesign`: the YAML (the native format, with the
profiles of ``profiles_from`` so it trains under ``cpu``/``h100``), the loaded and validated
:class:`~gwm_model.curriculum.spec.Curriculum`, which planner made it and why.

The offline planner is deterministic and works by field overlap:

1. tier 0: one specialist per top-level domain the datasets fill (``financial``, ``country_us``, ...),
   including the second-level subtrees that hold the datasets' fields, fed by the datasets filling it;
2. joins: while more than one node is open, the two open nodes whose datasets overlap most (shared
   sources plus shared second-level subtree names, ties broken by name) get a child that includes
   both and has both as parents; the last one (the root) includes everything the datasets fill.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml

from gwm_model.curriculum.dataset_profile import DatasetProfile
from gwm_model.curriculum.llm import CurriculumProvider, choose_provider, design_prompt, parse_reply
from gwm_model.curriculum.profiles import BUILTIN_CPU_PROFILE, CurriculumError, parse_profile, profile_to_dict
from gwm_model.curriculum.seed_format import tiers_from_parents
from gwm_model.curriculum.spec import (
    NODE_NAME,
    STANDARD_CURRICULUM,
    CanvasSettings,
    Curriculum,
    load_curriculum,
    load_curriculum_text,
)
from gwm_model.schema import WorldSchema, default_world

OFFLINE = "offline"


@dataclass
class CurriculumDesign:
    """A designed curriculum: ``yaml`` to save, ``curriculum`` loaded from it, the ``planner`` that made it
    (``offline`` or the provider's name) and its ``reasoning``."""

    yaml: str
    curriculum: Curriculum
    planner: str
    reasoning: str


@dataclass
class _Planned:
    name: str
    description: str
    include: list[str]
    data_sources: list[str]
    parents: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    second: set[str] = field(default_factory=set)


def _minimal(paths: set[str], order: dict[str, int]) -> list[str]:
    """``paths`` without those nested under another, in the schema's canonical order."""
    kept = {p for p in paths if not any(p.startswith(q + ".") for q in paths if q != p)}
    return sorted(kept, key=lambda p: order.get(p, len(order)))


def _check_datasets(datasets: Sequence[DatasetProfile], schema: WorldSchema) -> None:
    if not datasets:
        raise CurriculumError("build_curriculum: no datasets. Fix: pass at least one DatasetProfile")
    seen: set[str] = set()
    for d in datasets:
        if d.name in seen:
            raise CurriculumError(f"build_curriculum: dataset '{d.name}' is given twice. Fix: rename one")
        seen.add(d.name)
        if not d.fields:
            raise CurriculumError(f"build_curriculum: dataset '{d.name}' names no fields, so no node can learn from "
                                  "it. Fix: list the world paths it fills in DatasetProfile.fields")
        for path in d.fields:
            if path not in schema:
                raise CurriculumError(f"build_curriculum: dataset '{d.name}': {schema.unknown_path(path)}")


def offline_plan(datasets: Sequence[DatasetProfile], schema: WorldSchema) -> tuple[list[_Planned], str]:
    """The deterministic plan of the module docstring, with a sentence per decision."""
    order = {spec.path: i for i, spec in enumerate(schema.fields)}
    layers = {layer: i for i, layer in enumerate(schema.layers)}
    by_domain: dict[str, dict] = {}
    for d in datasets:
        for path in d.fields:
            parts = path.split(".")
            entry = by_domain.setdefault(parts[0], {"subtrees": set(), "sources": [], "datasets": []})
            entry["subtrees"].add(".".join(parts[:2]))
            if d.source_name not in entry["sources"]:
                entry["sources"].append(d.source_name)
            if d.name not in entry["datasets"]:
                entry["datasets"].append(d.name)
    open_nodes: list[_Planned] = []
    notes = []
    for domain in sorted(by_domain, key=lambda x: layers.get(x, len(layers))):
        entry = by_domain[domain]
        include = _minimal(entry["subtrees"], order)
        open_nodes.append(_Planned(
            name=domain, include=include, data_sources=list(entry["sources"]), domains=[domain],
            second={p.split(".")[1] for p in include if "." in p},
            description=f"{domain} specialist: {', '.join(include)} from {', '.join(entry['datasets'])}"))
        notes.append(f"'{domain}' is filled by {', '.join(entry['datasets'])}")
    planned = list(open_nodes)
    reasoning = [f"Offline planner: one tier-0 specialist per domain the datasets fill ({'; '.join(notes)})."]
    while len(open_nodes) > 1:
        pairs = []
        for i, a in enumerate(open_nodes):
            for b in open_nodes[i + 1:]:
                score = len(set(a.data_sources) & set(b.data_sources)) + len(a.second & b.second)
                pairs.append((-score, *sorted((a.name, b.name)), a, b))
        negative, _, _, a, b = min(pairs, key=lambda p: p[:3])
        domains = sorted(a.domains + b.domains, key=lambda x: layers.get(x, len(layers)))
        root = len(open_nodes) == 2
        if len(domains) <= 3:
            name = "__".join(domains)
        else:
            name = "integration" if root else f"{domains[0]}__{domains[1]}__and_{len(domains) - 2}_more"
        child = _Planned(
            name=name, include=_minimal(set(a.include) | set(b.include), order),
            data_sources=list(dict.fromkeys(a.data_sources + b.data_sources)), parents=[a.name, b.name],
            domains=domains, second=a.second | b.second,
            description=(f"joins {a.name} and {b.name}: " + ("everything the datasets fill, on one canvas" if root
                                                              else f"{', '.join(domains)} learned together")))
        reasoning.append(f"Join {a.name} + {b.name} -> {name} (overlap {-negative}: shared sources "
                         f"{sorted(set(a.data_sources) & set(b.data_sources))}, shared subtrees "
                         f"{sorted(a.second & b.second)}).")
        at = open_nodes.index(a)
        open_nodes = [n for n in open_nodes if n is not a and n is not b]
        open_nodes.insert(min(at, len(open_nodes)), child)
        planned.append(child)
    reasoning.append(f"The root '{open_nodes[0].name}' includes everything the datasets fill.")
    return planned, " ".join(reasoning)


def planned_from_reply(nodes: list, datasets: Sequence[DatasetProfile], schema: WorldSchema,
                       provider: str) -> list[_Planned]:
    """The reply's nodes checked against the schema and datasets (tiers are recomputed from parents)."""
    sources = list(dict.fromkeys(d.source_name for d in datasets))
    out: list[_Planned] = []
    for i, raw in enumerate(nodes):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise CurriculumError(f"LLM reply from {provider}: nodes[{i}] is not a mapping with a 'name': {raw!r}")
        name = raw["name"]
        what = f"LLM reply from {provider}: node '{name}'"
        if not NODE_NAME.fullmatch(name) or name == "trunk":
            raise CurriculumError(f"{what}: the name must use only letters, digits and underscores (not 'trunk')")
        if any(p.name == name for p in out):
            raise CurriculumError(f"{what} is declared twice")
        lists = {}
        for key in ("include", "parents", "data_sources"):
            value = raw.get(key) or []
            value = [value] if isinstance(value, str) else value
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise CurriculumError(f"{what}: '{key}' must be a list of strings, got {value!r}")
            lists[key] = value
        if not lists["include"]:
            raise CurriculumError(f"{what} includes nothing")
        for path in lists["include"]:
            if path.strip() != "*" and path.strip() not in schema:
                raise CurriculumError(f"{what} includes '{path}' which matches no field ({schema.unknown_path(path)})")
        for source in lists["data_sources"]:
            if source not in sources:
                raise CurriculumError(f"{what} names data source '{source}', which no dataset provides. Known: "
                                      f"{', '.join(sources)}")
        out.append(_Planned(name=name, description=str(raw.get("description") or ""), include=lists["include"],
                            data_sources=lists["data_sources"], parents=lists["parents"]))
    names = [p.name for p in out]
    for p in out:
        for parent in p.parents:
            if parent not in names:
                raise CurriculumError(f"LLM reply from {provider}: node '{p.name}' names parent '{parent}' which is "
                                      f"not one of its nodes ({', '.join(names)})")
    tiers_from_parents({p.name: p.parents for p in out}, f"LLM reply from {provider}")
    return out


def _base_profiles(profiles_from: Curriculum | None) -> tuple[dict, str, CanvasSettings]:
    if profiles_from is None and STANDARD_CURRICULUM.exists():
        profiles_from = load_curriculum(STANDARD_CURRICULUM)
    if profiles_from is None:
        return {"cpu": profile_to_dict(parse_profile(BUILTIN_CPU_PROFILE, "builtin", {}))}, "cpu", CanvasSettings()
    profiles = {}
    for name, body in (profiles_from.profiles or {}).items():
        compact = profile_to_dict(body)
        compact.pop("nodes", None)  # per-node overrides name the other curriculum's nodes
        profiles[name] = compact
    if not profiles:
        profiles = {"cpu": profile_to_dict(parse_profile(BUILTIN_CPU_PROFILE, "builtin", {}))}
    default = profiles_from.default_profile if profiles_from.default_profile in profiles else next(iter(profiles))
    return profiles, default, profiles_from.canvas


def design_yaml(goal: str, planned: Sequence[_Planned], planner: str, name: str,
                profiles_from: Curriculum | None = None) -> str:
    """The native-format YAML of a plan (both planners emit exactly this shape)."""
    profiles, default, canvas = _base_profiles(profiles_from)
    tiers = tiers_from_parents({p.name: p.parents for p in planned}, f"design '{name}'")
    nodes = []
    for p in planned:
        node = {"name": p.name, "tier": tiers[p.name], "description": p.description, "include": list(p.include)}
        if p.parents:
            node["parents"] = list(p.parents)
        node["data_sources"] = list(p.data_sources)
        nodes.append(node)
    doc = {"name": name, "description": goal.strip(), "canvas": canvas.to_dict(), "default_profile": default,
           "profiles": profiles, "nodes": nodes}
    header = [f"# Curriculum '{name}', designed by the {planner} planner for the goal:",
              *[f"#   {line}" for line in (goal.strip().splitlines() or ["(none given)"])],
              "# Nodes train in tier order; a child starts from the average of its parents' weights."]
    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120, allow_unicode=True)
    return "\n".join(header) + "\n" + body


def build_curriculum(goal: str, datasets: Sequence[DatasetProfile], *, schema: WorldSchema | None = None,
                     provider: CurriculumProvider | str | None = None, name: str = "designed",
                     profiles_from: Curriculum | None = None) -> CurriculumDesign:
    """Design, write and validate a curriculum for ``goal`` from ``datasets`` (see the module docstring).

    ``provider``: a :class:`CurriculumProvider`, ``"anthropic"``, ``"openai"``, ``"offline"``, or ``None``
    (Anthropic if ``ANTHROPIC_API_KEY`` is set, else OpenAI if ``OPENAI_API_KEY`` is, else offline).
    """
    schema = schema if schema is not None else default_world()
    datasets = list(datasets)
    _check_datasets(datasets, schema)
    chosen = choose_provider(provider)
    if chosen is None:
        planner = OFFLINE
        planned, reasoning = offline_plan(datasets, schema)
    else:
        planner = str(getattr(chosen, "name", type(chosen).__name__))
        reply_nodes, reasoning = parse_reply(chosen.complete(design_prompt(goal, datasets, schema)), planner)
        planned = planned_from_reply(reply_nodes, datasets, schema, planner)
    text = design_yaml(goal, planned, planner, name, profiles_from)
    try:
        curriculum = load_curriculum_text(text, source=f"<{planner} design '{name}'>", schema=schema)
    except CurriculumError as exc:
        if planner == OFFLINE:
            raise
        raise CurriculumError(f"LLM reply from {planner} does not make a valid curriculum: {exc}") from exc
    return CurriculumDesign(yaml=text, curriculum=curriculum, planner=planner, reasoning=reasoning)
