"""The Dagster UI under test: ``gwm ui`` as a subprocess on a loopback port, and headless Debian Chromium."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CHROMIUM = os.environ.get("GWM_CHROMIUM", "/usr/bin/chromium")
# no background traffic: this machine's closed network refuses it, many connections at a time
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCATION_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gwm_command() -> str:
    return str(Path(sys.executable).parent / "gwm")


class DagsterUi:
    """``gwm ui --port <port>`` in its own process group, its output in ``log``."""

    def __init__(self, env: dict[str, str], log: Path, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._out = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([gwm_command(), "ui", "--host", "127.0.0.1", "--port", str(self.port)],
                                     env=env, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def graphql(self, query: str) -> dict:
        request = urllib.request.Request(f"{self.url}/graphql", data=json.dumps({"query": query}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)["data"]

    def wait_loaded(self, timeout_s: float = 180.0) -> dict:
        """Wait until the webserver answers and the code location finished loading (or failed to)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gwm ui exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                entry = self.graphql(LOCATION_QUERY)["workspaceOrError"]["locationEntries"][0]
                if entry["loadStatus"] == "LOADED":
                    return entry
            except (urllib.error.URLError, ConnectionError, KeyError, IndexError, TypeError):
                pass
            time.sleep(1.0)
        raise AssertionError(f"the UI did not load within {timeout_s:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        try:  # whatever dagster dev left of its group (code server, daemon)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._out.close()
