"""Median wall time of a callable over repeats; the peak resident memory of a block."""

from __future__ import annotations

import gc
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path


def median_seconds(fn: Callable[[], object], repeats: int = 7, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


class PeakRss:
    """Resident-set high-water mark over a block, as bench.canvas_build measures it.

    On entry the kernel's mark is reset (``/proc/self/clear_refs``); on exit ``growth_mib`` is the mark
    minus the resident set at entry (native allocations of DuckDB, Arrow, Polars and numpy alike, pages
    actually touched) and ``peak_mib`` the mark itself. Where the mark cannot be reset, ru_maxrss is used
    (then a block's peak only shows when it exceeds every earlier one).
    """

    def __enter__(self) -> PeakRss:
        gc.collect()
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.method = "VmHWM after /proc/self/clear_refs, minus VmRSS before"
            self.before = _status_kib("VmRSS")
        except OSError:
            self.method = "ru_maxrss growth (the mark cannot be reset here)"
            self.before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self

    def __exit__(self, *exc: object) -> None:
        peak = (_status_kib("VmHWM") if self.method.startswith("VmHWM")
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        self.peak_mib = peak / 1024
        self.growth_mib = max(0, peak - self.before) / 1024
