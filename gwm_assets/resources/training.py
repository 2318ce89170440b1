"""Training settings of a run: which profile, where checkpoints go, how many CPU threads a trainer uses."""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

from gwm_assets.paths import checkpoints_dir, warehouse_path


class TrainingResource(dg.ConfigurableResource):
    """``profile``: a profile of the curriculum file (``cpu``, ``h100``, ...); empty means ``GWM_PROFILE``, else
    the curriculum's default. Set it for one run with run config
    ``resources: {training: {config: {profile: h100}}}``."""

    profile: str = Field(default_factory=lambda: os.environ.get("GWM_PROFILE", ""),
                         description="curriculum profile; empty = GWM_PROFILE or the curriculum's default_profile")
    checkpoints_path: str = Field(default_factory=lambda: str(checkpoints_dir(warehouse_path())),
                                  description="directory of node checkpoints (<dir>/<node>/)")
    torch_threads: int = Field(default=1, description="CPU threads per training process (1: the multiprocess "
                               "executor runs one trainer per core without oversubscribing them); 0 = torch's default")
    force: bool = Field(default=False, description="retrain even when a checkpoint with the same inputs exists")

    def chosen_profile(self, default: str) -> str:
        return self.profile or default
