"""Training loggers: where the training loop reports progress and metrics.

The loop talks to a list of loggers through one small protocol (:class:`TrainLogger`):

* ``start(run, total_steps)`` once, with the run's configuration (a JSON-able dict) and the number of
  optimiser steps planned (``None`` when unknown);
* ``log_step(step, metrics)`` after every optimiser step; ``step`` counts the steps done so far
  (1-based) and ``metrics`` holds scalars such as ``loss``, ``lr``, ``grad_norm``, ``windows_per_s``;
* ``log_epoch(epoch, metrics)`` after every epoch with train/validation scalars (``train_loss``,
  ``val_loss``, ...);
* ``finish(summary)`` once at the end.

Implementations: :class:`ConsoleLogger` (progress bar, or plain lines when the stream is not a
terminal), :class:`JsonlLogger` (one JSON object per event; :func:`read_jsonl` reads it back),
:class:`TensorBoardLogger`, :class:`WandbLogger` (optional dependency), :class:`CallbackLogger`
(forward to plain functions, e.g. an orchestrator's log) and :class:`MultiLogger` (fan-out).
:func:`make_loggers` builds a list from names. Exceptions raised by a logger propagate: a broken
logger stops training instead of silently losing metrics.
"""

from __future__ import annotations

import importlib.util
import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from gwm_model.training.console import ConsoleLogger, _scalar  # ConsoleLogger is re-exported

LOGGER_NAMES = ("console", "jsonl", "tensorboard", "wandb", "auto", "none")


@runtime_checkable
class TrainLogger(Protocol):
    """What the training loop calls; see the module docstring for when each method runs."""

    def start(self, run: dict, total_steps: int | None) -> None: ...

    def log_step(self, step: int, metrics: dict[str, float]) -> None: ...

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None: ...

    def finish(self, summary: dict) -> None: ...


def _jsonable(value: Any) -> Any:
    """``value`` made JSON-safe: NaN/inf become ``None``, numpy/torch scalars and arrays plain Python,
    paths and other objects their ``str``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return _jsonable(value.tolist())
    return str(value)


class JsonlLogger:
    """Append one JSON object per event to ``path``: ``{"event": ..., "time": <unix seconds>, ...}``.

    ``start`` writes ``run`` and ``total_steps``; ``step`` and ``epoch`` lines carry the step or epoch
    number and the metrics as top-level keys; ``finish`` writes ``summary``. NaN and inf become
    ``null``. Each line is flushed when written, so the file can be followed while training runs and
    survives a crash. The file and its parent folders are created on first write; an existing file is
    appended to (a resumed run continues the same log).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None

    def _write(self, event: str, fields: dict[str, Any]) -> None:
        if self._file is None or self._file.closed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        record = {"event": event, "time": time.time(), **_jsonable(fields)}
        self._file.write(json.dumps(record, allow_nan=False) + "\n")
        self._file.flush()

    def _metrics(self, key: str, number: int, metrics: dict[str, float]) -> dict[str, Any]:
        clash = {"event", "time", key} & set(metrics)
        if clash:
            raise ValueError(f"JsonlLogger: metric names {sorted(clash)} clash with the record's own keys; "
                             "rename those metrics")
        return {key: int(number), **metrics}

    def start(self, run: dict, total_steps: int | None) -> None:
        self._write("start", {"total_steps": total_steps, "run": dict(run)})

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        self._write("step", self._metrics("step", step, metrics))

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        self._write("epoch", self._metrics("epoch", epoch, metrics))

    def finish(self, summary: dict) -> None:
        self._write("finish", {"summary": dict(summary)})
        if self._file is not None:
            self._file.close()


def read_jsonl(path: str | Path, event: str | None = None) -> list[dict]:
    """The records of a JSON-lines file, optionally only those whose ``event`` is ``event``.

    Blank lines are skipped. A last line cut short by a crash (no trailing newline, invalid JSON) is
    dropped; any other invalid line raises ``ValueError`` naming the file and line number.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines) and not text.endswith("\n"):
                break  # a half-written final line
            raise ValueError(f"{path}:{number}: not valid JSON ({error.msg}); the log file is corrupt") from error
        if event is None or record.get("event") == event:
            records.append(record)
    return records


def _epoch_tag(name: str) -> str:
    """TensorBoard tag for an epoch metric: ``val_x`` -> ``val/x``, ``train_x`` -> ``train/x_epoch`` (not to
    mix with the per-step ``train/x``), names with a ``/`` unchanged, anything else ``epoch/<name>``."""
    if "/" in name:
        return name
    if name.startswith("val_"):
        return f"val/{name[4:]}"
    if name.startswith("train_"):
        return f"train/{name[6:]}_epoch"
    return f"epoch/{name}"


class TensorBoardLogger:
    """Write scalars to a TensorBoard event file in ``logdir`` (``torch.utils.tensorboard``).

    Step metrics go under ``train/<name>`` against the step; epoch metrics are tagged by
    :func:`_epoch_tag` (``val_loss`` -> ``val/loss``) and written at the latest step so they share the
    x-axis with the step curves, plus ``epoch/epoch``. The run config is stored as text (``hparams``)
    at start and the summary (``summary``) at finish; the writer is closed at finish.
    """

    def __init__(self, logdir: str | Path, flush_secs: int = 30) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ImportError("TensorBoardLogger needs the tensorboard package: pip install tensorboard") from error
        self.logdir, self._writer_class, self._flush_secs = Path(logdir), SummaryWriter, flush_secs
        self._writer, self._step = None, 0

    @property
    def writer(self):
        """The ``SummaryWriter``, opened on first use (so constructing the logger creates no files)."""
        if self._writer is None:
            self.logdir.mkdir(parents=True, exist_ok=True)
            self._writer = self._writer_class(log_dir=str(self.logdir), flush_secs=self._flush_secs)
        return self._writer

    @staticmethod
    def _text(payload: dict) -> str:
        body = json.dumps(_jsonable(payload), indent=2, sort_keys=True, allow_nan=False)
        return "\n".join("    " + line for line in body.splitlines())  # markdown code block

    def start(self, run: dict, total_steps: int | None) -> None:
        self.writer.add_text("hparams", self._text({**run, "total_steps": total_steps}), global_step=0)

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        self._step = int(step)
        for name, value in metrics.items():
            number = _scalar(value)
            if number is not None:
                self.writer.add_scalar(name if "/" in name else f"train/{name}", number, global_step=self._step)

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        self.writer.add_scalar("epoch/epoch", float(epoch), global_step=self._step)
        for name, value in metrics.items():
            number = _scalar(value)
            if number is not None:
                self.writer.add_scalar(_epoch_tag(name), number, global_step=self._step)
        self.writer.flush()

    def finish(self, summary: dict) -> None:
        self.writer.add_text("summary", self._text(summary), global_step=self._step)
        self.writer.close()
        self._writer = None


class WandbLogger:
    """Log to Weights & Biases. ``wandb`` is imported here, not at module import, and a missing package
    raises ``ImportError`` with the install command. ``init_kwargs`` go to ``wandb.init`` (``name``,
    ``dir``, ``mode="offline"``, ...); the run config becomes the wandb config."""

    def __init__(self, project: str, **init_kwargs: Any) -> None:
        try:
            import wandb
        except ImportError as error:
            raise ImportError("WandbLogger needs the wandb package, which is not installed: pip install wandb "
                              "(or leave 'wandb' out of the logger list)") from error
        self._wandb, self.project, self.init_kwargs = wandb, project, init_kwargs
        self._run, self._step = None, 0

    def start(self, run: dict, total_steps: int | None) -> None:
        config = _jsonable({**run, "total_steps": total_steps})
        if self.init_kwargs.get("dir"):
            Path(self.init_kwargs["dir"]).mkdir(parents=True, exist_ok=True)
        self._run = self._wandb.init(project=self.project, config=config, **self.init_kwargs)

    def _log(self, values: dict[str, float]) -> None:
        if self._run is None:
            raise RuntimeError("WandbLogger: start() must be called before logging")
        self._run.log(values, step=self._step)

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        self._step = int(step)
        self._log({(k if "/" in k else f"train/{k}"): v for k, v in metrics.items() if _scalar(v) is not None})

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        values = {_epoch_tag(k): v for k, v in metrics.items() if _scalar(v) is not None}
        self._log({**values, "epoch/epoch": epoch})

    def finish(self, summary: dict) -> None:
        if self._run is not None:
            self._run.summary.update(_jsonable(summary))
            self._run.finish()
            self._run = None


class CallbackLogger:
    """Forward each event to a plain function, called like the method it stands for: ``on_step(step,
    metrics)``, ``on_epoch(epoch, metrics)``, ``on_start(run, total_steps)``, ``on_finish(summary)``;
    events without a function are ignored. Used to bridge into another system's logging
    (``on_step=lambda step, m: context.log.info(...)``)."""

    def __init__(self, on_step: Callable | None = None, on_epoch: Callable | None = None,
                 on_start: Callable | None = None, on_finish: Callable | None = None) -> None:
        self.on_step, self.on_epoch, self.on_start, self.on_finish = on_step, on_epoch, on_start, on_finish

    def _call(self, function: Callable | None, *args: Any) -> None:
        if function is not None:
            function(*args)

    def start(self, run: dict, total_steps: int | None) -> None:
        self._call(self.on_start, run, total_steps)

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        self._call(self.on_step, step, metrics)

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        self._call(self.on_epoch, epoch, metrics)

    def finish(self, summary: dict) -> None:
        self._call(self.on_finish, summary)


class MultiLogger:
    """Send every event to each logger in order. An exception from any logger propagates."""

    def __init__(self, loggers: Sequence[TrainLogger]) -> None:
        self.loggers = list(loggers)

    def _each(self, method: str, *args: Any) -> None:
        for logger in self.loggers:
            getattr(logger, method)(*args)

    def start(self, run: dict, total_steps: int | None) -> None:
        self._each("start", run, total_steps)

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        self._each("log_step", step, metrics)

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        self._each("log_epoch", epoch, metrics)

    def finish(self, summary: dict) -> None:
        self._each("finish", summary)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def make_loggers(spec: str | Sequence[str] | None, directory: str | Path, *, wandb_project: str = "gwm",
                 wandb_kwargs: dict | None = None) -> list[TrainLogger]:
    """Build loggers from names.

    Names: ``console``; ``jsonl`` (``directory/metrics.jsonl``); ``tensorboard``
    (``directory/tensorboard``); ``wandb`` (project ``wandb_project``, files under ``directory``);
    ``auto`` = console, jsonl, tensorboard and wandb if installed; ``none`` = nothing. A trailing
    ``?`` makes a name optional: if its package is missing it is skipped with a warning instead of
    raising ``ImportError`` (``wandb`` without ``?`` and wandb missing raises). ``spec=None`` means
    ``["auto"]``; a string is split on commas (``"console,jsonl"``). Unknown names raise ``ValueError``.
    """
    if spec is None:
        spec = ["auto"]
    elif isinstance(spec, str):
        spec = spec.split(",")
    directory = Path(directory)
    wanted: dict[str, bool] = {}  # name -> optional, in order, each once
    for raw in spec:
        name = raw.strip().lower()
        optional = name.endswith("?")
        name = name.rstrip("?").strip()
        if name not in LOGGER_NAMES:
            raise ValueError(f"unknown logger {raw!r}; choose from {', '.join(LOGGER_NAMES)} "
                             "(append '?' to skip one whose package is missing)")
        if name == "auto":
            for part in ("console", "jsonl", "tensorboard", *(["wandb"] if _installed("wandb") else [])):
                wanted.setdefault(part, False)
        elif name != "none":
            wanted.setdefault(name, optional)
    loggers: list[TrainLogger] = []
    for name, optional in wanted.items():
        try:
            if name == "console":
                loggers.append(ConsoleLogger())
            elif name == "jsonl":
                loggers.append(JsonlLogger(directory / "metrics.jsonl"))
            elif name == "tensorboard":
                loggers.append(TensorBoardLogger(directory / "tensorboard"))
            else:
                loggers.append(WandbLogger(wandb_project, **{"dir": str(directory), **(wandb_kwargs or {})}))
        except ImportError as error:
            if not optional:
                raise
            warnings.warn(f"logger '{name}' skipped: {error}", stacklevel=2)
    return loggers
