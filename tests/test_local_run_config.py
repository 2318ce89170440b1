"""`make run`'s run config (deploy/local/run_config.yaml) holds a run's warehouse writers to one at a time by the op
tag every writer carries, so none of them polls the busy `duckdb_write` pool with Dagster's growing back-off."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml

from gwm_assets.definitions import defs
from gwm_assets.resources.warehouse import WRITER_POOL, WRITER_TAG

RUN_CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "local" / "run_config.yaml"


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


def test_the_local_run_config_is_valid_and_limits_the_writer_tag_to_one_step():
    job = defs.resolve_implicit_global_asset_job_def()
    config = yaml.safe_load(RUN_CONFIG.read_text())
    dg.validate_run_config(job, config)  # raises on a key the multiprocess executor does not know
    limits = config["execution"]["config"]["multiprocess"]["tag_concurrency_limits"]
    ((key, value),) = WRITER_TAG.items()
    assert [(lim["key"], lim["value"], lim["limit"]) for lim in limits] == [(key, value, 1)]
