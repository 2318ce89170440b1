"""``CurriculumTrainer``: the whole curriculum in one process, phase by phase, without Dagster.

Phases are the tiers: the trunk, then every tier-0 node, then the joins of tier 1, and so on, so
each phase trains on larger canvases than the one before. It uses exactly the building blocks the
Dagster assets use (:func:`train_trunk`, :func:`train_node`, the same fingerprints and checkpoint
layout ``<out_dir>/<node>/``), so a directory it fills can be read by the assets and the other way
round, and a run that stopped part-way continues where it stopped: a node whose checkpoint was
trained from the same inputs is kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gwm_model.canvas.canvas import Canvas
from gwm_model.curriculum.fingerprint import (
    is_current,
    node_fingerprint,
    stored_manifest,
    trunk_fingerprint,
    weights_hash,
)
from gwm_model.curriculum.node_training import ParentInput, train_node
from gwm_model.curriculum.spec import Curriculum, CurriculumError
from gwm_model.curriculum.trunk import TrunkInput, save_trunk, train_trunk
from gwm_model.schema import WorldSchema

TRUNK = "trunk"


@dataclass
class CurriculumRun:
    """What a run did: per node ``trained`` or ``kept``, its manifest, and the wall time of each phase."""

    status: dict[str, str] = field(default_factory=dict)
    manifests: dict[str, dict] = field(default_factory=dict)
    phase_seconds: dict[str, float] = field(default_factory=dict)


class CurriculumTrainer:
    """Train ``curriculum`` sequentially into ``out_dir``. ``canvases``: node name -> Canvas (or a function
    returning it), e.g. ``lambda n: Canvas.load(warehouse_dir / "canvases" / n)``."""

    def __init__(self, curriculum: Curriculum, schema: WorldSchema,
                 canvases: Mapping[str, Canvas] | Callable[[str], Canvas], out_dir: str | Path,
                 profile: str | None = None, embeddings=None, log: Callable[[str], None] = print) -> None:
        self.curriculum, self.schema, self.out_dir = curriculum, schema, Path(out_dir)
        self.profile = profile or curriculum.default_profile
        self.embeddings, self.log = embeddings, log
        self._canvases = canvases
        self._cache: dict[str, Canvas] = {}

    def canvas(self, node: str) -> Canvas:
        if node not in self._cache:
            source = self._canvases
            try:
                self._cache[node] = source(node) if callable(source) else source[node]
            except (KeyError, FileNotFoundError) as exc:
                raise CurriculumError(f"CurriculumTrainer: no canvas for node '{node}' ({exc}). Fix: build its "
                                      "canvas first (materialize canvas/<node>)") from exc
        return self._cache[node]

    def phases(self) -> list[list[str]]:
        """Node names per tier, in curriculum order (the trunk comes before the first)."""
        tiers = sorted({self.curriculum[n].tier for n in self.curriculum.order()})
        return [[n for n in self.curriculum.order() if self.curriculum[n].tier == t] for t in tiers]

    def _needed(self, nodes: Sequence[str] | None) -> set[str]:
        if nodes is None:
            return set(self.curriculum.order())
        wanted: set[str] = set()
        stack = list(nodes)
        while stack:
            name = stack.pop()
            if name not in self.curriculum.nodes:
                raise CurriculumError(f"CurriculumTrainer: unknown node '{name}'. Known: "
                                      f"{', '.join(self.curriculum.order())}")
            if name not in wanted:
                wanted.add(name)
                stack.extend(self.curriculum[name].parents)
        return wanted

    def train_trunk(self, status: CurriculumRun) -> None:
        hyper = self.curriculum.trunk_hyperparameters(self.profile)
        roots = [n for n in self.curriculum.order() if not self.curriculum[n].parents]  # the roots fork from it
        inputs = [TrunkInput(n, self.canvas(n), self.curriculum[n].projection(self.schema)) for n in roots]
        inputs_fp = trunk_fingerprint([i.name for i in inputs], hyper.to_dict(),
                                      inputs[0].canvas.schema_hash)
        out = self.out_dir / TRUNK
        if is_current(out, inputs_fp):
            status.status[TRUNK] = "kept"
        else:
            result = train_trunk(inputs, hyper.model, hyper.train, self.embeddings)
            save_trunk(out, result, hyper, inputs, inputs_fp)
            status.status[TRUNK] = "trained"
            self.log(f"trunk: {result.steps} steps on {result.trained_on} in {result.seconds:.1f} s")
        status.manifests[TRUNK] = stored_manifest(out) or {}

    def train_one(self, name: str, status: CurriculumRun) -> None:
        node = self.curriculum[name]
        hyper = self.curriculum.hyperparameters(name, self.profile)
        canvas = self.canvas(name)
        inputs_fp = node_fingerprint(canvas.data_version, hyper.to_dict(), weights_hash(self.out_dir, TRUNK, name),
                                     {p: weights_hash(self.out_dir, p, name) for p in node.parents})
        out = self.out_dir / name
        if is_current(out, inputs_fp):
            status.status[name] = "kept"
        else:
            parents = [ParentInput(p, self.out_dir / p, self.canvas(p), self.curriculum[p].projection(self.schema))
                       for p in node.parents]
            result = train_node(node, canvas, node.projection(self.schema), hyper, out, self.out_dir / TRUNK, parents,
                                embeddings=self.embeddings, loggers=[], log=self.log,
                                extra_manifest={"inputs_fingerprint": inputs_fp})
            status.status[name] = "trained"
            self.log(f"{name}: {result.steps} steps in {result.seconds:.1f} s; {result.metrics}")
        status.manifests[name] = stored_manifest(out) or {}

    def run(self, nodes: Sequence[str] | None = None) -> CurriculumRun:
        """Train the trunk and ``nodes`` (default: all) with their ancestors, phase by phase."""
        needed = self._needed(nodes)
        status = CurriculumRun()
        started = time.perf_counter()
        self.train_trunk(status)
        status.phase_seconds[TRUNK] = time.perf_counter() - started
        for tier, phase in enumerate(self.phases()):
            started = time.perf_counter()
            for name in phase:
                if name in needed:
                    self.train_one(name, status)
            status.phase_seconds[f"tier {tier}"] = time.perf_counter() - started
        return status
