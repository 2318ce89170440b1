"""A job on gwm's local executor for tests/test_local_executor.py (a module, so the executor's step processes can
import it): two warehouse writers and one step that is not, each writing when it ran to ``GWM_TEST_TIMES``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import dagster as dg

from gwm_assets.resources.deployment import LOCAL_EXECUTOR
from gwm_assets.resources.warehouse import WRITER_TAG

HOLD_S = 1.5


def _record(name: str) -> None:
    started = time.time()
    time.sleep(HOLD_S)
    Path(os.environ["GWM_TEST_TIMES"], f"{name}.json").write_text(json.dumps([started, time.time()]))


@dg.op(tags=WRITER_TAG)
def first_writer() -> None:
    _record("first_writer")


@dg.op(tags=WRITER_TAG)
def second_writer() -> None:
    _record("second_writer")


@dg.op
def reader() -> None:
    _record("reader")


@dg.job(executor_def=LOCAL_EXECUTOR)
def writers_and_a_reader() -> None:
    first_writer()
    second_writer()
    reader()
