"""Training one curriculum node from the files on disk, without Dagster: what ``train/<node>`` runs.

:func:`prepare_node` reads the node's canvas, its parents' canvases and fingerprints the inputs (canvas data
version, the trunk's and parents' weights hashes, resolved hyperparameters, code version);
:func:`train_job` trains it and writes ``<checkpoints>/<node>/`` (weights, manifest, ``metrics.jsonl``).
The Dagster asset and the torchrun entry point :mod:`gwm_assets.training.train_node_ddp` both call these, so a
checkpoint written by either is kept by the other when the inputs are unchanged.

:func:`torchrun_command` and :func:`run_torchrun` are how the asset trains a node on several GPUs
(``TrainingResource.ddp_processes``): it runs the entry point under ``torchrun`` as a subprocess, streams
its output and fails with the node, the exit code and the last lines when it fails.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gwm_model.canvas import Canvas
from gwm_model.curriculum import Curriculum, CurriculumError, CurriculumNode, NodeHyperparameters
from gwm_model.curriculum.fingerprint import node_fingerprint, stored_manifest, weights_hash
from gwm_model.curriculum.node_training import NodeResult, ParentInput, train_node
from gwm_model.nn.field_text import FieldEmbeddings
from gwm_model.schema import WorldSchema
from gwm_model.training.loggers import JsonlLogger

TRUNK = "trunk"
ENTRY_POINT = "gwm_assets.training.train_node_ddp"


def load_canvas(directory: Path, node: str) -> Canvas:
    if not (directory / node).exists():
        raise CurriculumError(f"train/{node}: no canvas at {directory / node}. Fix: materialize canvas/{node} first")
    return Canvas.load(directory / node)


@dataclass
class NodeJob:
    """Everything training one node needs, read and fingerprinted before anything trains."""

    node: CurriculumNode
    profile: str
    hyper: NodeHyperparameters
    schema: WorldSchema
    canvas: Canvas
    parents: list[ParentInput]
    checkpoints: Path
    fingerprint: str

    @property
    def out(self) -> Path:
        return self.checkpoints / self.node.name

    def stored(self) -> dict[str, Any] | None:
        """The manifest of the checkpoint on disk (None when absent or torn)."""
        return stored_manifest(self.out)

    def current(self) -> bool:
        """True when the checkpoint on disk was trained from exactly these inputs."""
        stored = self.stored()
        return bool(stored and stored.get("inputs_fingerprint") == self.fingerprint)


def prepare_node(curriculum: Curriculum, name: str, schema: WorldSchema, canvases: Path, checkpoints: Path,
                 profile: str) -> NodeJob:
    """Read node ``name``'s canvas and its parents', and fingerprint its inputs; a clear error (naming the node)
    for an unknown node, a missing canvas or a missing trunk/parent checkpoint."""
    if name not in curriculum.nodes:
        raise CurriculumError(f"train/{name}: no node '{name}' in curriculum {curriculum.path}. Fix: use one of "
                              f"{', '.join(curriculum.order())}")
    node = curriculum[name]
    hyper = curriculum.hyperparameters(name, profile)
    canvases, checkpoints = Path(canvases), Path(checkpoints)
    canvas = load_canvas(canvases, name)
    parents = [ParentInput(p, checkpoints / p, load_canvas(canvases, p), curriculum[p].projection(schema))
               for p in node.parents]
    fingerprint = node_fingerprint(canvas.data_version, hyper.to_dict(), weights_hash(checkpoints, TRUNK, name),
                                   {p: weights_hash(checkpoints, p, name) for p in node.parents})
    return NodeJob(node, hyper.profile, hyper, schema, canvas, parents, checkpoints, fingerprint)


def train_job(job: NodeJob, loggers: Sequence = (), log: Callable[[str], None] = print) -> NodeResult | None:
    """Train the node and write its checkpoint (with ``metrics.jsonl`` beside it). In a DDP run every rank calls
    this; rank 0 writes and returns the result, the others return None."""
    return train_node(job.node, job.canvas, job.node.projection(job.schema), job.hyper, job.out,
                      job.checkpoints / TRUNK, job.parents, embeddings=FieldEmbeddings(job.canvas.schema_hash),
                      loggers=[*loggers, JsonlLogger(job.out / "metrics.jsonl")], log=log,
                      extra_manifest={"inputs_fingerprint": job.fingerprint})


class DDPLaunchError(RuntimeError):
    """``torchrun`` training a node failed; the message names the node, the exit code and the last lines."""


def torchrun_command(node: str, processes: int, *, curriculum: Path, profile: str, warehouse: str | Path,
                     checkpoints: str | Path, schema: str = "", threads: int = 0, force: bool = True) -> list[str]:
    """``torchrun --standalone --nproc_per_node=<processes> -m gwm_assets.training.train_node_ddp ...`` (torchrun run as
    ``python -m torch.distributed.run`` with this interpreter, so no PATH lookup)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", ENTRY_POINT, node, "--curriculum", str(curriculum), "--warehouse", str(warehouse),
               "--checkpoints", str(checkpoints)]
    if profile:
        command += ["--profile", profile]
    if schema:
        command += ["--schema", str(schema)]
    if threads > 0:
        command += ["--threads", str(threads)]
    if force:
        command.append("--force")
    return command


def run_torchrun(command: Sequence[str], node: str, processes: int, log: Callable[[str], None] = print,
                 tail: int = 30, env: dict[str, str] | None = None) -> None:
    """Run ``command``, passing each output line to ``log``; raise :class:`DDPLaunchError` when it fails."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    environment.setdefault("OMP_NUM_THREADS", "1")
    last: collections.deque[str] = collections.deque(maxlen=tail)
    errors: list[str] = []
    try:
        process = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   bufsize=1, env=environment)
    except OSError as exc:
        raise DDPLaunchError(f"train/{node}: cannot start torchrun ({exc}). Command: {' '.join(command)}") from exc
    assert process.stdout is not None
    with process:
        for line in process.stdout:
            line = line.rstrip("\n")
            log(line)
            last.append(line)
            if line.startswith(f"[train/{node}") and " error: " in line:
                errors.append(line)
    if process.returncode != 0:
        shown = [e for e in errors if e not in last] + list(last)
        raise DDPLaunchError(
            f"train/{node}: torchrun with {processes} processes exited with code {process.returncode}. "
            f"Last lines:\n" + "\n".join(shown) + f"\nCommand: {' '.join(command)}")
