"""Train one curriculum node on several GPUs of one machine with torch DDP, under ``torchrun``::

    torchrun --standalone --nproc_per_node=8 -m gwm_assets.training.train_node_ddp basic_finance --profile h100

Each process trains on its slice of every global batch (``batch_size`` of the profile stays the global batch,
see :mod:`gwm_model.training.distributed`); rank 0 evaluates and writes ``<checkpoints>/<node>/`` exactly as
the ``train/<node>`` asset does (same layout, manifest and input fingerprint, plus a ``distributed``
section), so a later materialization of ``train/<node>`` keeps it instead of retraining. A checkpoint whose
fingerprint already matches is kept unless ``--force``. Paths default like the Dagster resources
(``GWM_WAREHOUSE``, ``GWM_CURRICULUM``, ``GWM_SCHEMA``, ``GWM_PROFILE``). Without torchrun it trains in one
process. Dagster runs this itself with ``TrainingResource.ddp_processes`` (``GWM_DDP_PROCESSES``).

The node is a positional argument: torchrun reads every ``--option`` on its command line, and ``--node``
would be taken for an abbreviation of its own ``--node-rank``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from gwm_assets.resources.paths import canvases_dir, checkpoints_dir, curriculum_path, schema_path, warehouse_path
from gwm_assets.training.node_run import prepare_node, train_job
from gwm_model.curriculum import CurriculumError, load_curriculum
from gwm_model.schema import SchemaError, default_world
from gwm_model.training import distributed
from gwm_model.training.checkpoint import CheckpointError
from gwm_model.training.loggers import CallbackLogger


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="torchrun --nproc_per_node=N -m gwm_assets.training.train_node_ddp",
                                     description="Train one curriculum node with torch DDP (see the module doc).")
    parser.add_argument("node", help="curriculum node to train (the trunk and its parents must be trained)")
    parser.add_argument("--profile", default=os.environ.get("GWM_PROFILE", ""),
                        help="curriculum profile (default GWM_PROFILE, else the curriculum's default_profile)")
    parser.add_argument("--curriculum", default=str(curriculum_path()), help="curriculum file (GWM_CURRICULUM)")
    parser.add_argument("--schema", default=str(schema_path() or ""),
                        help="world schema (GWM_SCHEMA; default the packaged one)")
    parser.add_argument("--warehouse", default=str(warehouse_path()),
                        help="warehouse file; canvases are read from <its dir>/canvases (GWM_WAREHOUSE)")
    parser.add_argument("--checkpoints", default="", help="checkpoint directory (default <warehouse dir>/checkpoints)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per process (0: torch's default)")
    parser.add_argument("--force", action="store_true", help="train even when the checkpoint is current")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    label = f"[train/{args.node} rank {rank}/{world}]"

    def say(message: str, always: bool = False) -> None:
        if rank == 0 or always:
            print(f"{label} {message}", flush=True)

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    checkpoints = Path(args.checkpoints or checkpoints_dir(args.warehouse))
    try:
        curriculum = load_curriculum(args.curriculum)
        job = prepare_node(curriculum, args.node, default_world(args.schema or None), canvases_dir(args.warehouse),
                           checkpoints, args.profile or curriculum.default_profile)
    except (CurriculumError, SchemaError, CheckpointError) as exc:
        print(f"{label} error: {exc}", file=sys.stderr, flush=True)
        return 2
    if job.current() and not args.force:
        say(f"inputs unchanged (fingerprint {job.fingerprint}); kept {job.out}")
        return 0
    distributed.init_from_env()
    try:
        say(f"training with {distributed.world_size()} process(es) ({distributed.backend() or 'no process group'}), "
            f"profile {job.profile}, global batch {job.hyper.train.batch_size}, fingerprint {job.fingerprint}")

        def step(n: int, metrics: dict) -> None:
            total = state.get("total") or 0
            if n == 1 or n == total or (total and n % max(1, total // 10) == 0):
                say(f"step {n}/{total} loss {metrics['loss']:.4f} lr {metrics['lr']:.2e}")

        state: dict[str, int] = {}
        progress = CallbackLogger(on_step=step, on_start=lambda run, total: state.update(total=int(total or 0)))
        result = train_job(job, loggers=[progress], log=say)
        distributed.barrier()
    except (CurriculumError, CheckpointError) as exc:
        print(f"{label} error: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        distributed.cleanup()
    if result is not None:
        say(f"wrote {result.manifest_path} ({result.steps} steps in {result.seconds:.1f} s; metrics {result.metrics})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
