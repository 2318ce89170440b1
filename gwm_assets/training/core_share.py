"""The machine's CPU cores, shared between the training steps that run on it at the same time.

Under the multiprocess executor several ``train/*`` steps may train side by side (the tier-0 nodes),
and later one step trains alone (the joins on the critical path). A fixed thread count is wrong for
one of the two: one thread each leaves cores idle in the tail, torch's default in every process
oversubscribes them. Here each training process registers itself in a machine-local directory
(one file per process id, under the system temp directory: pods of a cluster do not see each
other's), and asks for ``cores // processes registered`` threads; the trainers re-ask every few
steps, so a step that started with one core takes both once its neighbour finished.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; the CPU count where that is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class CoreShare:
    """``with CoreShare() as share: torch.set_num_threads(share.threads())``; see the module doc."""

    def __init__(self, directory: str | Path | None = None, cores: int | None = None):
        self.directory = Path(directory or Path(tempfile.gettempdir()) / f"gwm-training-{os.getuid()}")
        self.cores = cores or available_cores()
        self.token = self.directory / str(os.getpid())

    def __enter__(self) -> CoreShare:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.token.touch()
        return self

    def __exit__(self, *exc) -> None:
        self.token.unlink(missing_ok=True)

    def running(self) -> int:
        """Training processes registered and still alive (files of processes that died are removed)."""
        count = 0
        for entry in self.directory.iterdir():
            if not entry.name.isdigit():
                continue
            if _alive(int(entry.name)):
                count += 1
            else:
                entry.unlink(missing_ok=True)
        return max(1, count)

    def threads(self) -> int:
        """This process's share of the cores: ``cores // running``, at least one."""
        return max(1, self.cores // self.running())
