"""gwm's local executor (``LOCAL_EXECUTOR``, the Definitions' default) holds a run's warehouse writers to one at a time
by the op tag every writer carries, so none of them polls the busy ``duckdb_write`` pool with Dagster's growing
back-off. It is part of the Definitions, so a run launched from the UI or by a schedule gets it as ``make run`` does."""

from __future__ import annotations

import json

import dagster as dg

from gwm_assets.definitions import defs
from gwm_assets.resources.warehouse import WRITER_POOL, WRITER_TAG


def test_every_warehouse_writer_carries_the_writer_tag_and_nothing_else_does():
    job = defs.resolve_implicit_global_asset_job_def()
    writers, tagged = set(), set()
    for name, node in job.graph.node_dict.items():
        if node.definition.pool == WRITER_POOL:
            writers.add(name)
        if all(node.tags.get(k) == v for k, v in WRITER_TAG.items()):
            tagged.add(name)
    assert {"fields", "observations", "bundled_text", "forecasts", "canvas__full_integration"} <= writers
    assert tagged == writers  # training steps (no pool) run beside a writer; every writer waits for the others


def test_a_run_with_no_run_config_gets_the_forkserver_and_the_writer_limit():
    job = defs.resolve_implicit_global_asset_job_def()
    assert job.executor_def.name == "gwm_multiprocess"
    resolved = dg.validate_run_config(job, {})["execution"]["gwm_multiprocess"]
    ((key, value),) = WRITER_TAG.items()
    assert resolved["tag_concurrency_limits"] == [{"key": key, "value": value, "limit": 1}]
    assert resolved["start_method"] == {"forkserver": {"preload_modules": ["gwm_assets.definitions"]}}
    assert resolved["max_concurrent"] is None  # the CPU count
    again = dg.validate_run_config(job, {"execution": {"config": {"max_concurrent": 3}}})
    assert again["execution"]["gwm_multiprocess"]["max_concurrent"] == 3  # the one setting a run may choose


def test_writers_run_one_after_the_other_while_another_step_runs_beside_them(tmp_path, monkeypatch):
    from tests.local_executor_job import HOLD_S, writers_and_a_reader

    times = tmp_path / "times"
    times.mkdir()
    monkeypatch.setenv("GWM_TEST_TIMES", str(times))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(dg.reconstructable(writers_and_a_reader), instance=instance,
                                run_config={"execution": {"config": {"max_concurrent": 3}}})
    assert result.success
    ran = {p.stem: json.loads(p.read_text()) for p in times.glob("*.json")}
    assert set(ran) == {"first_writer", "second_writer", "reader"}
    (a_start, a_end), (b_start, b_end) = sorted([ran["first_writer"], ran["second_writer"]])
    assert b_start >= a_end  # the second writer started only once the first had finished
    r_start, r_end = ran["reader"]
    assert r_start < a_end and a_start < r_end or r_start < b_end and b_start < r_end  # the reader was not held
    assert b_end - a_start >= 2 * HOLD_S
