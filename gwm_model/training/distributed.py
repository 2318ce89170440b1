"""Data-parallel plumbing for training one model on several processes (torch DDP under ``torchrun``).

``torchrun`` starts one process per GPU and sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``;
:func:`init_from_env` joins them into a process group (``nccl`` on CUDA, ``gloo`` on CPU). While a group
is initialised the :class:`~gwm_model.training.trainer.Trainer` wraps its model in
``DistributedDataParallel`` and each rank trains on its own :func:`shard` of every global batch; without
one nothing here is used and training is the plain single-process loop.

Semantics: ``batch_size`` stays the *global* batch. Every rank draws the same window order from the same
seed and takes a disjoint contiguous slice of each batch, so a profile means the same optimisation (same
windows per step, steps, learning-rate schedule) on one process or eight. Each rank's loss is weighted by
its share of the denominator of the batch's loss (the loss weight of the scored cells), so the averaged
gradient is exactly the gradient of the whole batch's loss; only the random masking draws differ (each rank
draws its own, seeded ``seed + rank * RANK_SEED_STRIDE``). Only rank 0 logs, evaluates on the test windows
and writes checkpoints (:func:`is_main`).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

#: Seed offset between ranks for the masking / noise draws (rank 0 keeps the configured seed).
RANK_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class Shard:
    """The positions of a global batch one rank processes. ``owned``: False when the batch has fewer
    items than ranks and this rank only repeats one (its loss then has weight 0, but it still joins the
    gradient all-reduce every DDP step needs)."""

    positions: np.ndarray
    owned: bool


def shard(n: int, rank: int, world: int) -> Shard:
    """Rank ``rank``'s contiguous slice of ``n`` items split over ``world`` ranks (sizes differ by at most 1;
    the slices are disjoint and cover ``range(n)``). A rank left without items gets a repeat of one, not owned."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"shard: rank {rank} is not in a world of {world}")
    lo, hi = n * rank // world, n * (rank + 1) // world
    if hi > lo or n == 0:
        return Shard(np.arange(lo, hi), hi > lo)
    return Shard(np.array([rank % n]), False)


def is_active() -> bool:
    """True while a process group is initialised (this process is one rank of a DDP run)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    return dist.get_world_size() if is_active() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0)) if is_active() else 0


def is_main() -> bool:
    """Rank 0, or the only process: the one that logs, evaluates and saves."""
    return rank() == 0


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def init_from_env(backend: str | None = None, timeout_s: float | None = None) -> bool:
    """Join the process group ``torchrun`` describes in the environment; returns whether one is active.

    ``backend``: ``GWM_DDP_BACKEND`` or ``nccl`` when CUDA is available, else ``gloo``. With ``nccl``
    each process uses GPU ``LOCAL_RANK``. ``timeout_s`` (default ``GWM_DDP_TIMEOUT_S`` or one hour) is how
    long a rank waits in a collective, e.g. while rank 0 alone measures a merge or evaluates the node.
    Without torchrun's variables it does nothing (single-process training).
    """
    if is_active():
        return True
    if not launched_by_torchrun() or not dist.is_available():
        return False
    backend = backend or os.environ.get("GWM_DDP_BACKEND") or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    timeout = dt.timedelta(seconds=float(timeout_s or os.environ.get("GWM_DDP_TIMEOUT_S") or 3600))
    dist.init_process_group(backend=backend, timeout=timeout)
    return True


def backend() -> str | None:
    return str(dist.get_backend()) if is_active() else None


def device(requested: torch.device) -> torch.device:
    """``requested`` pinned to this rank's GPU (``cuda`` -> ``cuda:<LOCAL_RANK>``) during a DDP run."""
    if is_active() and requested.type == "cuda" and requested.index is None:
        return torch.device("cuda", local_rank())
    return requested


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """In-place sum over ranks (a no-op without a process group); returns ``tensor``."""
    if is_active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_object(value: object) -> list[object]:
    """``value`` of every rank, in rank order (``[value]`` without a process group)."""
    if not is_active():
        return [value]
    out: list[object] = [None] * world_size()
    dist.all_gather_object(out, value)
    return out


def barrier() -> None:
    if is_active():
        if backend() == "nccl":
            dist.barrier(device_ids=[local_rank()])
        else:
            dist.barrier()


def cleanup() -> None:
    """Leave the process group (at the end of a run, on every rank)."""
    if is_active():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` in ``DistributedDataParallel`` (``device_ids=[LOCAL_RANK]`` on CUDA). Parameters a forward
    may leave unused (the diffusion timestep embedding under the masked objective) are allowed."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else local_rank()] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
