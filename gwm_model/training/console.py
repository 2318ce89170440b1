"""``ConsoleLogger``: training progress on a text stream (a progress bar on a terminal, plain lines otherwise)."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import IO, Any


def _scalar(value: Any) -> float | None:
    """A metric value as a finite float, or ``None`` when it is missing, NaN, inf or not a number."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _fmt(value: Any) -> str:
    number = _scalar(value)
    if number is None:
        return "nan"
    if number != 0 and (abs(number) < 1e-3 or abs(number) >= 1e5):
        return f"{number:.2e}"
    return f"{number:.4g}"


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ConsoleLogger:
    """Progress on a text stream (default ``sys.stderr``): ``[####----] step/total pct | loss (smoothed) |
    lr | grad norm | windows/s | steps/s | ETA``, plus one line per epoch and one at the end.

    On a terminal the bar is redrawn in place (at most every 0.1 s). Elsewhere (a log file, CI, an
    orchestrator capturing output) plain lines are printed on the first step, every ``every`` steps
    (default: 20 lines over the run, or every 100 steps when the total is unknown), at the last step,
    and whenever ``interval`` seconds passed without one. ``tty`` overrides the terminal detection;
    ``clock`` (seconds, monotonic) is there for tests. The loss is an exponential moving average
    (``smoothing`` = weight of the past); throughput and ETA are averaged from the first logged step.
    """

    def __init__(self, stream: IO[str] | None = None, every: int | None = None, width: int = 24,
                 interval: float = 30.0, smoothing: float = 0.9, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if every is not None and every < 1:
            raise ValueError(f"ConsoleLogger every={every}: must be a positive number of steps")
        if not 0 <= smoothing < 1:
            raise ValueError(f"ConsoleLogger smoothing={smoothing}: must lie in [0, 1)")
        self._stream, self.every, self.width, self.interval = stream, every, width, interval
        self.smoothing, self._tty, self._clock = smoothing, tty, clock
        self.start({}, None)  # usable without start(), e.g. in a quick script

    @property
    def stream(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stderr

    def _emit(self, line: str, redraw: bool = False) -> None:
        if redraw:
            self.stream.write("\r" + line.ljust(self._drawn))
            self._drawn = len(line)
        else:
            self.stream.write(("\n" if self._drawn else "") + line + "\n")
            self._drawn = 0
        self.stream.flush()

    def start(self, run: dict, total_steps: int | None) -> None:
        self._total, self._t0, self._first = total_steps, self._clock(), None
        self._every = self.every or (max(1, round(total_steps / 20)) if total_steps else 100)
        self._loss, self._loss_weight, self._last_print, self._drawn = 0.0, 0.0, -math.inf, 0
        self._redraw = self._tty if self._tty is not None else bool(getattr(self.stream, "isatty", bool)())
        if run or total_steps:
            name = f" {run['name']}:" if "name" in run else ""
            self._emit(f"training{name} {total_steps or 'an unknown number of'} steps")

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        now = self._clock()
        if self._first is None:
            self._first = (step, now)
        loss = _scalar(metrics.get("loss"))
        if loss is not None:
            self._loss = self.smoothing * self._loss + (1 - self.smoothing) * loss
            self._loss_weight = self.smoothing * self._loss_weight + (1 - self.smoothing)
        last = self._total is not None and step >= self._total
        if self._redraw:
            due = now - self._last_print >= 0.1 or last
        else:
            due = step == self._first[0] or step % self._every == 0 or last or now - self._last_print >= self.interval
        if due:
            self._last_print = now
            self._emit(self._line(step, metrics, now), redraw=self._redraw)

    def _line(self, step: int, metrics: dict[str, float], now: float) -> str:
        if self._total:
            done = min(step / self._total, 1.0)
            filled = int(self.width * done)
            parts = [f"[{'#' * filled}{'-' * (self.width - filled)}] {step}/{self._total} {done:4.0%}"]
        else:
            parts = [f"step {step}"]
        if "loss" in metrics:
            bad = _scalar(metrics["loss"]) is None
            parts.append("loss nan" if bad else f"loss {_fmt(self._loss / max(self._loss_weight, 1e-12))}")
        for key, label in (("lr", "lr"), ("grad_norm", "gnorm")):
            if key in metrics:
                parts.append(f"{label} {_fmt(metrics[key])}")
        if "windows_per_s" in metrics:
            parts.append(f"{_fmt(metrics['windows_per_s'])} win/s")
        first_step, first_time = self._first
        rate = (step - first_step) / (now - first_time) if now > first_time and step > first_step else None
        if rate:
            parts.append(f"{_fmt(rate)} it/s")
        if self._total and step < self._total:
            parts.append(f"ETA {_duration((self._total - step) / rate)}" if rate else "ETA ?")
        else:
            parts.append(f"elapsed {_duration(now - self._t0)}")
        return " | ".join(parts)

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        values = [f"{k} {_fmt(v)}" for k, v in metrics.items()]
        self._emit(" | ".join([f"epoch {epoch}", *values, f"elapsed {_duration(self._clock() - self._t0)}"]))

    def finish(self, summary: dict) -> None:
        values = [f"{k} {_fmt(v) if not isinstance(v, str) else v}" for k, v in summary.items()
                  if isinstance(v, str) and len(v) <= 40 or (_scalar(v) is not None and not isinstance(v, bool))]
        self._emit(" | ".join([f"done in {_duration(self._clock() - self._t0)}", *values]))
