"""``gwm ui``: Dagster's webserver and daemon (``dagster dev``) on gwm, after checking what usually goes wrong.

- The port: ``dagster dev`` on a busy port logs the bind error and keeps its daemon running, a second
  daemon beside the first one on the same instance. Here a busy port is an error before anything starts.
- ``DAGSTER_HOME``: unset, Dagster keeps runs in a temporary directory that is deleted at exit, so the
  project's ``dagster_home/`` is used instead; set to a directory that does not exist is an error.
- The curriculum: a file that does not load makes the code location fail in the UI. That is reported
  here first (file and problem); the UI still starts, so run history and the warehouse stay viewable,
  and *Reload definitions* picks up the fixed file.

Imports no Dagster (the CLI starts fast); ``dagster dev`` replaces this process.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from gwm_assets.resources.paths import curriculum_path, project_root

CODE_LOCATION = "gwm_assets.definitions"


class UiError(Exception):
    """A problem that stops the UI from starting; the message says what to do."""


@dataclass(frozen=True)
class UiLaunch:
    command: list[str]
    env: dict[str, str]
    warnings: list[str]


def check_port(host: str, port: int) -> None:
    """Fail when ``host:port`` cannot be bound (another server holds it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as the webserver binds: a port left in TIME_WAIT by a stopped server is free, a listening one is not
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UiError(f"port {port} on {host} is already in use ({exc.strerror}); another `gwm ui` or "
                          f"`dagster dev` may be running. Fix: stop it, or pick a free port with --port") from exc


def resolve_dagster_home(env: dict[str, str]) -> Path:
    """``DAGSTER_HOME`` when set (it must exist), else the project's ``dagster_home/``."""
    value = env.get("DAGSTER_HOME", "")
    default = project_root() / "dagster_home"
    if not value:
        default.mkdir(parents=True, exist_ok=True)
        return default
    home = Path(value).expanduser()
    if not home.is_dir():
        raise UiError(f"DAGSTER_HOME={value} is not an existing directory, so Dagster has nowhere to keep runs. "
                      f"Fix: create it (mkdir -p {value}) or unset DAGSTER_HOME to use {default}")
    return home.resolve()


def curriculum_problem() -> str | None:
    """The curriculum's load error, or None when it loads (the code location imports the same file)."""
    from gwm_model.curriculum import CurriculumError, load_curriculum

    try:
        load_curriculum(curriculum_path())
    except CurriculumError as exc:
        return str(exc)
    return None


def dagster_executable() -> str:
    beside = Path(sys.executable).parent / "dagster"
    found = str(beside) if beside.exists() else shutil.which("dagster")
    if not found:
        raise UiError("the `dagster` command is not installed in this environment. Fix: run `make setup`")
    return found


def prepare(host: str, port: int, env: dict[str, str] | None = None) -> UiLaunch:
    """Check port, instance directory and curriculum; return the ``dagster dev`` command to run."""
    env = dict(os.environ if env is None else env)
    check_port(host, port)
    env["DAGSTER_HOME"] = str(resolve_dagster_home(env))
    warnings = []
    problem = curriculum_problem()
    if problem:
        warnings.append(f"the curriculum does not load: {problem}\n  The UI starts with the code location "
                        f"'{CODE_LOCATION}' failed (Deployment > Code locations > View error). Runs, checkpoints "
                        f"and the warehouse are untouched. Fix the file, then click 'Reload definitions'.")
    command = [dagster_executable(), "dev", "-m", CODE_LOCATION, "-h", host, "-p", str(port)]
    return UiLaunch(command=command, env=env, warnings=warnings)


def launch(host: str, port: int) -> int:
    """Run the checks, print what is wrong, then become ``dagster dev`` (signals reach it directly)."""
    try:
        plan = prepare(host, port)
    except UiError as exc:
        print(f"gwm ui: {exc}", file=sys.stderr)
        return 2
    for warning in plan.warnings:
        print(f"gwm ui: warning: {warning}", file=sys.stderr)
    print(f"gwm ui: DAGSTER_HOME={plan.env['DAGSTER_HOME']}; opening http://{host}:{port}", file=sys.stderr)
    sys.stderr.flush()
    os.execve(plan.command[0], plan.command, plan.env)
    return 0  # not reached
