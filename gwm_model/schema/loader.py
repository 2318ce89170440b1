"""Read the declarative world schema file (YAML) into typed records, with line-accurate errors.

File layout::

    version: 1
    units:        {name: meaning, ...}          # the unit vocabulary fields may use
    templates:    {Country: {prefix: country_, about: ..., <fields and groups>}, ...}
    world:        {<layer>: <group> | {entity: Country, label: United States}, ...}

A *leaf* is a one-line mapping with ``size`` (HxW), ``period``, ``unit``, ``about`` and optional
``weight`` (default 1.0) and ``input_only`` (default false). A *group* is any other mapping; its
``about`` describes the subtree and becomes the description of the group's coarse field.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import yaml

from gwm_model.schema.periods import PERIODS
from gwm_model.schema.spec import EntityTemplate, FieldSpec, GroupNode, SchemaError

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SIZE_RE = re.compile(r"^\s*(-?\d+)\s*x\s*(-?\d+)\s*$")
LEAF_KEYS = {"size", "period", "unit", "about", "weight", "input_only"}
LEAF_REQUIRED = ("size", "period", "unit", "about")
TOP_KEYS = {"version", "units", "templates", "world"}

try:  # libyaml is ~10x faster at composing; fall back to the pure-Python loader
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader


def closest(word: str, candidates, n: int = 3) -> list[str]:
    return difflib.get_close_matches(word, list(candidates), n=n, cutoff=0.5)


def _hint(word: str, candidates) -> str:
    near = closest(word, candidates)
    return f"(did you mean {' or '.join(repr(c) for c in near)}?)" if near else ""


class _Reader:
    """Walks the composed YAML node graph, keeping line numbers for every error."""

    def __init__(self, source: str):
        self.source = source
        self.units: dict[str, str] = {}
        self.templates: dict[str, EntityTemplate] = {}
        self.in_template = ""  # while reading a template, paths are relative to its instances

    # -- errors -------------------------------------------------------------------------------
    def fail(self, node: yaml.Node | None, path: str, problem: str, fix: str) -> SchemaError:
        line = node.start_mark.line + 1 if node is not None else 0
        where = f"{self.source}:{line}" if line else self.source
        subject = f" at '{path}'" if path else ""
        if self.in_template and path and not path.startswith("templates."):
            subject += f" (template {self.in_template})"
        return SchemaError(f"{where}{subject}: {problem}. Fix: {fix}")

    def pairs(self, node: yaml.Node, path: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, path, "expected a mapping", "write 'name: value' entries under it")
        seen: dict[str, int] = {}
        out = []
        for key_node, value_node in node.value:
            key = key_node.value
            if not isinstance(key_node, yaml.ScalarNode) or not NAME_RE.match(str(key)):
                raise self.fail(
                    key_node, path, f"invalid name {key!r}",
                    "names are identifiers (letters, digits, underscores; no dots or spaces)",
                )
            if key in seen:
                dup = f"{path}.{key}" if path else key
                raise self.fail(
                    key_node, dup, f"duplicate path (first defined on line {seen[key]})",
                    "rename or remove one of the two entries",
                )
            seen[key] = key_node.start_mark.line + 1
            out.append((key, key_node, value_node))
        return out

    def scalar(self, node: yaml.Node, path: str, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, path, f"{what} must be a single value", f"write {what} on one line")
        return node.value

    def text(self, node: yaml.Node, path: str, what: str) -> str:
        value = self.scalar(node, path, what).strip()
        if not value:
            raise self.fail(node, path, f"{what} is empty", f"write a one-line {what}")
        return value

    # -- document -----------------------------------------------------------------------------
    def read(self, text: str) -> tuple[int, dict[str, str], dict[str, EntityTemplate], GroupNode]:
        try:
            doc = yaml.compose(text, Loader=_Loader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            raise SchemaError(f"{self.source}{line}: not valid YAML ({exc}). Fix: correct the syntax") from exc
        if doc is None:
            raise SchemaError(f"{self.source}: the schema file is empty. Fix: add units, templates and world")
        top = {key: (kn, vn) for key, kn, vn in self.pairs(doc, "")}
        for key, (kn, _) in top.items():
            if key not in TOP_KEYS:
                raise self.fail(kn, key, "unknown top-level section", f"use one of {sorted(TOP_KEYS)}")
        for required in ("version", "units", "world"):
            if required not in top:
                raise self.fail(doc, "", f"missing top-level section '{required}'", f"add '{required}:'")
        version_node = top["version"][1]
        version = self.scalar(version_node, "version", "version")
        if not version.isdigit():
            raise self.fail(version_node, "version", "version must be an integer", "write 'version: 1'")
        for name, _, value_node in self.pairs(top["units"][1], "units"):
            self.units[name] = self.text(value_node, f"units.{name}", "unit meaning")
        if "templates" in top:
            for name, key_node, value_node in self.pairs(top["templates"][1], "templates"):
                self.templates[name] = self.template(name, key_node, value_node)
        world = GroupNode(path="", about="The whole world", line=top["world"][0].start_mark.line + 1)
        for name, key_node, value_node in self.pairs(top["world"][1], "world"):
            world.children.append(self.world_child(name, key_node, value_node))
        return int(version), self.units, self.templates, world

    def template(self, name: str, key_node: yaml.Node, node: yaml.Node) -> EntityTemplate:
        prefix = ""
        entries = []
        for key, kn, vn in self.pairs(node, f"templates.{name}"):
            if key == "prefix":
                prefix = self.text(vn, f"templates.{name}.prefix", "prefix")
            else:
                entries.append((key, kn, vn))
        self.in_template = name
        try:
            body = self.group_entries(entries, node, rel_prefix="", shown_prefix=f"templates.{name}")
        finally:
            self.in_template = ""
        if not prefix or not NAME_RE.match(prefix) or not prefix.endswith("_"):
            raise self.fail(
                node, f"templates.{name}", "a template needs a name prefix ending in '_'",
                "add e.g. 'prefix: country_' so instances are named country_jp",
            )
        return EntityTemplate(name=name, prefix=prefix, about=body.about, line=key_node.start_mark.line + 1,
                              body=body)

    def world_child(self, name: str, key_node: yaml.Node, node: yaml.Node) -> GroupNode | FieldSpec:
        if isinstance(node, yaml.MappingNode) and any(k.value == "entity" for k, _ in node.value):
            return self.instance(name, node)
        return self.node(name, name, key_node, node)

    def instance(self, name: str, node: yaml.Node) -> GroupNode:
        spec = {key: vn for key, _, vn in self.pairs(node, name)}
        unknown = set(spec) - {"entity", "label", "about"}
        if unknown:
            raise self.fail(node, name, f"unknown keys {sorted(unknown)} on an entity instance",
                            "an instance takes only 'entity', 'label' and 'about'")
        type_name = self.text(spec["entity"], name, "entity type")
        if type_name not in self.templates:
            hint = _hint(type_name, self.templates)
            raise self.fail(spec["entity"], name, f"unknown entity type '{type_name}' {hint}".rstrip(),
                            f"use one of {sorted(self.templates)} or declare it under 'templates'")
        template = self.templates[type_name]
        if not name.startswith(template.prefix):
            raise self.fail(node, name, f"a {type_name} instance must be named '{template.prefix}<id>'",
                            f"rename it to '{template.prefix}{name}'")
        label = self.text(spec["label"], name, "label") if "label" in spec else name[len(template.prefix):]
        about = self.text(spec["about"], name, "about") if "about" in spec else f"{label}: {template.about}"
        return instantiate(template, name, label=label, about=about, line=node.start_mark.line + 1)

    def node(self, name: str, path: str, key_node: yaml.Node, node: yaml.Node) -> GroupNode | FieldSpec:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(key_node, path, "expected a field {size, period, unit, about} or a group",
                            "write the field as a one-line mapping, or nest fields under it")
        keys = {k.value for k, _ in node.value}
        if keys & {"size", "period", "unit", "weight", "input_only"}:
            return self.leaf(path, node)
        return self.group_entries(self.pairs(node, path), node, rel_prefix=path, shown_prefix=path)

    def group_entries(self, entries, node: yaml.Node, rel_prefix: str, shown_prefix: str) -> GroupNode:
        about = ""
        group = GroupNode(path=rel_prefix, about="", line=node.start_mark.line + 1)
        for key, kn, vn in entries:
            if key == "about":
                about = self.text(vn, shown_prefix, "about")
                continue
            child_path = f"{rel_prefix}.{key}" if rel_prefix else key
            group.children.append(self.node(key, child_path, kn, vn))
        if not about:
            raise self.fail(node, shown_prefix, "group has no 'about'",
                            "add a one-line 'about:' describing the subtree")
        if not group.children:
            raise self.fail(node, shown_prefix, "group has no fields", "add fields or remove the group")
        group.about = about
        return group

    def leaf(self, path: str, node: yaml.Node) -> FieldSpec:
        spec = {key: vn for key, _, vn in self.pairs(node, path)}
        for key in spec:
            if key not in LEAF_KEYS:
                hint = _hint(key, LEAF_KEYS)
                raise self.fail(spec[key], path, f"unknown field key '{key}' {hint}".rstrip(),
                                f"a field takes {sorted(LEAF_KEYS)}")
        for key in LEAF_REQUIRED:
            if key not in spec:
                raise self.fail(node, path, f"field has no '{key}'", f"add '{key}:' to the field")
        size = self.scalar(spec["size"], path, "size")
        match = SIZE_RE.match(size)
        if not match or int(match.group(1)) <= 0 or int(match.group(2)) <= 0:
            raise self.fail(spec["size"], path, f"footprint '{size}' is not a positive HxW",
                            "write the canvas footprint as e.g. 'size: 1x2' (both sides >= 1)")
        period = self.scalar(spec["period"], path, "period")
        if period not in PERIODS:
            hint = _hint(period, PERIODS)
            raise self.fail(spec["period"], path, f"unknown period '{period}' {hint}".rstrip(),
                            f"use one of {', '.join(PERIODS)}")
        unit = self.scalar(spec["unit"], path, "unit")
        if unit not in self.units:
            hint = _hint(unit, self.units)
            raise self.fail(spec["unit"], path, f"unknown unit '{unit}' {hint}".rstrip(),
                            "use a unit declared under 'units:' or declare it there")
        weight = 1.0
        if "weight" in spec:
            raw = self.scalar(spec["weight"], path, "weight")
            try:
                weight = float(raw)
            except ValueError:
                weight = float("nan")
            if not weight >= 0.0 or weight == float("inf"):
                raise self.fail(spec["weight"], path, f"loss weight '{raw}' is not a finite number >= 0",
                                "set 'weight:' to 0 or more (0 = never a training target)")
        input_only = False
        if "input_only" in spec:
            raw = self.scalar(spec["input_only"], path, "input_only").lower()
            if raw not in ("true", "false"):
                raise self.fail(spec["input_only"], path, f"input_only must be true or false, got '{raw}'",
                                "write 'input_only: true' for conditioning-only fields")
            input_only = raw == "true"
        return FieldSpec(
            path=path, kind="leaf", period=period, loss_weight=weight, unit=unit,
            description=self.text(spec["about"], path, "about"), h=int(match.group(1)),
            w=int(match.group(2)), is_output=not input_only, line=node.start_mark.line + 1,
        )


def _rebase(node: GroupNode | FieldSpec, root: str, entity: str, entity_type: str) -> GroupNode | FieldSpec:
    path = f"{root}.{node.path}" if node.path else root
    if isinstance(node, FieldSpec):
        return FieldSpec(
            path=path, kind=node.kind, period=node.period, loss_weight=node.loss_weight, unit=node.unit,
            description=node.description, h=node.h, w=node.w, is_output=node.is_output, entity=entity,
            entity_type=entity_type, line=node.line,
        )
    return GroupNode(
        path=path, about=node.about, line=node.line, entity=entity, entity_type=entity_type,
        children=[_rebase(c, root, entity, entity_type) for c in node.children],
    )


def instantiate(template: EntityTemplate, name: str, label: str, about: str, line: int) -> GroupNode:
    """A copy of ``template``'s subtree rooted at the top-level path ``name``."""
    group = _rebase(template.body, name, name, template.name)
    assert isinstance(group, GroupNode)
    group.about = about
    group.line = line
    return group


def read_schema_file(path: Path) -> tuple[str, int, dict[str, str], dict[str, EntityTemplate], GroupNode]:
    text = Path(path).read_text(encoding="utf-8")
    version, units, templates, world = _Reader(str(path)).read(text)
    return text, version, units, templates, world
