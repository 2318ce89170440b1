"""Training processes share the machine's cores: each asks for cores // (processes registered and alive)."""

from __future__ import annotations

import subprocess
import sys

from gwm_assets.training.core_share import CoreShare


def test_alone_a_trainer_takes_every_core_and_leaves_no_trace(tmp_path):
    with CoreShare(tmp_path, cores=4) as share:
        assert share.running() == 1 and share.threads() == 4
        assert share.token.exists()
    assert not any(tmp_path.iterdir())


def test_live_neighbours_split_the_cores_and_dead_ones_are_forgotten(tmp_path):
    neighbour = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    try:
        (tmp_path / str(neighbour.pid)).touch()  # a trainer still running
        (tmp_path / finished.stdout.strip()).touch()  # a trainer that was killed without unregistering
        with CoreShare(tmp_path, cores=4) as share:
            assert share.running() == 2 and share.threads() == 2
            assert not (tmp_path / finished.stdout.strip()).exists()
            neighbour.kill()
            neighbour.wait()
            assert share.threads() == 4  # the neighbour finished: this trainer takes its cores
    finally:
        neighbour.kill()


def test_more_trainers_than_cores_get_one_thread_each(tmp_path):
    sleepers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2)]
    try:
        for p in sleepers:
            (tmp_path / str(p.pid)).touch()
        with CoreShare(tmp_path, cores=2) as share:
            assert share.running() == 3 and share.threads() == 1
    finally:
        for p in sleepers:
            p.kill()
