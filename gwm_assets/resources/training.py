"""Training settings of a run: which profile, where checkpoints go, how many CPU threads a trainer uses, and
whether a node trains on several GPUs (torch DDP under torchrun)."""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

from gwm_assets.resources.paths import checkpoints_dir, warehouse_path


class TrainingResource(dg.ConfigurableResource):
    """``profile``: a profile of the curriculum file (``cpu``, ``h100``, ...); empty means ``GWM_PROFILE``, else
    the curriculum's default. Set it for one run with run config
    ``resources: {training: {config: {profile: h100}}}``."""

    profile: str = Field(default_factory=lambda: os.environ.get("GWM_PROFILE", ""),
                         description="curriculum profile; empty = GWM_PROFILE or the curriculum's default_profile")
    checkpoints_path: str = Field(default_factory=lambda: str(checkpoints_dir(warehouse_path())),
                                  description="directory of node checkpoints (<dir>/<node>/)")
    torch_threads: int = Field(default=0, description="CPU threads per training process; 0 = share the cores "
                               "between the training steps running at the same time, re-balanced every few steps "
                               "(gwm_assets.training.core_share)")
    force: bool = Field(default=False, description="retrain even when a checkpoint with the same inputs exists")
    ddp_processes: int = Field(default_factory=lambda: int(os.environ.get("GWM_DDP_PROCESSES") or 0),
                               description="> 0: each train/<node> asset runs `torchrun --standalone --nproc_per_node=N"
                               " -m gwm_assets.training.train_node_ddp` (one process per GPU, torch DDP) "
                               "instead of training in-process; 0 = GWM_DDP_PROCESSES or in-process. The trunk "
                               "always trains in-process")

    def chosen_profile(self, default: str) -> str:
        return self.profile or default
