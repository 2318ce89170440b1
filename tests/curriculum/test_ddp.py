"""Multi-process training of one node with torch DDP, for real: ``torchrun --standalone --nproc_per_node=2`` on CPU
(gloo) with the tiny profile on synthetic canvases. Rank 0 alone writes the checkpoint the ``train/<node>`` asset
would write (same layout, manifest, fingerprint); both ranks end with the same weights; with deterministic masking
the two ranks splitting each global batch train the same weights as one process; Dagster keeps that checkpoint,
launches torchrun itself with ``ddp_processes``, and a failing torchrun names the node and exit code."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from gwm_assets.resources.training import TrainingResource
from gwm_assets.resources.warehouse import WarehouseResource
from gwm_assets.resources.world import WorldSchemaResource
from gwm_assets.training.assets import training_assets
from gwm_assets.training.node_run import DDPLaunchError, prepare_node, run_torchrun, torchrun_command, train_job
from gwm_model.curriculum import load_curriculum
from gwm_model.curriculum.fingerprint import trunk_fingerprint
from gwm_model.curriculum.trunk import TrunkInput, save_trunk, train_trunk
from gwm_model.inference import WorldModel
from gwm_model.training.distributed import shard
from tests.curriculum.helpers import TIER0, TINY_CURRICULUM, build_world, embeddings_in, tiny_curriculum

TORCHRUN = str(Path(sys.executable).parent / "torchrun")


@pytest.fixture(scope="module")
def root(world, tmp_path_factory):
    """A warehouse directory with the tiny curriculum's canvases, a trained trunk and a field-embedding cache
    (deterministic stand-in vectors), as the Dagster assets and the torchrun entry point read them."""
    root = tmp_path_factory.mktemp("ddp")
    doc = yaml.safe_load(TINY_CURRICULUM)  # no random extra hiding (ranks draw their own masks): exact comparisons
    doc["profiles"]["tiny"]["train"]["masking"] = {"cell_rate": 0.0, "field_rate": 0.0, "span_rate": 0.0}
    doc["profiles"]["tiny"]["train"]["batch_size"] = 7  # uneven shards (3 + 4): the ranks' losses weigh differently
    (root / "curriculum.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    curriculum = load_curriculum(root / "curriculum.yaml")
    built = build_world(world, tiny_curriculum())
    for name, canvas in built.canvases.items():
        canvas.save(root / "canvases" / name)
    embeddings = embeddings_in(root / "cache", world)
    for name in curriculum.order():  # cache every field, so no process ever loads the real text model
        embeddings(curriculum[name].projection(world).fields)
    hyper = curriculum.trunk_hyperparameters()
    inputs = [TrunkInput(n, built.canvases[n], curriculum[n].projection(world)) for n in TIER0]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    trunk = train_trunk(inputs, hyper.model, hyper.train, embeddings)
    torch.set_num_threads(threads)
    save_trunk(root / "checkpoints" / "trunk", trunk, hyper, inputs,
               trunk_fingerprint(list(TIER0), hyper.to_dict(), inputs[0].canvas.schema_hash))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GWM_CACHE", str(root / "cache"))  # in-process training and every torchrun child read it
        patch.setenv("OMP_NUM_THREADS", "1")
        yield root


def entry_args(root: Path, node: str) -> list[str]:
    return ["-m", "gwm_assets.training.train_node_ddp", node, "--curriculum", str(root / "curriculum.yaml"),
            "--warehouse", str(root / "w.duckdb"), "--checkpoints", str(root / "checkpoints")]


@pytest.fixture(scope="module")
def ddp_rates(root):
    """``torchrun --standalone --nproc_per_node=2 -m gwm_assets.training.train_node_ddp rates ...`` (README)."""
    run = subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node=2", *entry_args(root, "rates")],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return run


def manifest_of(directory: Path) -> dict:
    return json.loads((directory / "manifest.json").read_text())


def test_shards_are_disjoint_and_cover_the_batch():
    for n in (0, 1, 3, 8, 9, 17):
        for world in (1, 2, 3, 8):
            parts = [shard(n, r, world) for r in range(world)]
            owned = [p.positions for p in parts if p.owned]
            merged = np.concatenate(owned) if owned else np.zeros(0, dtype=int)
            assert sorted(merged.tolist()) == list(range(n)), (n, world)  # disjoint and covering
            assert max(p.positions.size for p in parts) - min(p.positions.size for p in parts) <= 1 or n < world
            assert all(p.positions.size >= 1 for p in parts) or n == 0  # every rank joins each DDP step
            assert all(p.owned == (n * (r + 1) // world > n * r // world) for r, p in enumerate(parts))
    assert shard(9, 0, 1).positions.tolist() == list(range(9))  # one process: the whole batch
    with pytest.raises(ValueError):
        shard(4, 2, 2)


def test_torchrun_two_ranks_write_one_checkpoint_like_the_single_process_one(root, ddp_rates, world):
    assert ddp_rates.returncode == 0, ddp_rates.stdout[-3000:] + ddp_rates.stderr[-3000:]
    out = ddp_rates.stdout
    wrote = [line for line in out.splitlines() if " wrote " in line]
    assert len(wrote) == 1 and wrote[0].startswith("[train/rates rank 0/2]")  # rank 0 alone saves
    assert "[train/rates rank 1/2]" not in out  # and alone logs
    directory = root / "checkpoints" / "rates"
    ddp = manifest_of(directory)
    dist = ddp["distributed"]
    assert dist["world_size"] == 2 and dist["backend"] == "gloo"
    assert dist["global_batch_size"] == 7 and dist["rank_batch_size"] == 4
    assert len(dist["rank_weight_digests"]) == 2 and len(set(dist["rank_weight_digests"])) == 1  # identical weights
    assert not list(directory.glob("*.tmp*"))
    starts = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
    assert [r["event"] for r in starts].count("start") == 1 and starts[0]["run"]["world_size"] == 2
    model = WorldModel.load(directory)
    assert model is not None
    # the same node trained in one process, from a copy of the same trunk
    single_root = root / "single"
    shutil.copytree(root / "checkpoints" / "trunk", single_root / "trunk")
    curriculum = load_curriculum(root / "curriculum.yaml")
    job = prepare_node(curriculum, "rates", world, root / "canvases", single_root, "tiny")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = manifest_of(train_job(job, log=lambda message: None).manifest_path.parent)
    finally:
        torch.set_num_threads(threads)
    assert ddp["inputs_fingerprint"] == single["inputs_fingerprint"] == job.fingerprint
    assert set(ddp) == set(single) | {"distributed"}
    for key in ("hyperparameters", "plan", "model", "node", "profile", "steps", "canvas", "field_periods",
                "projection", "code_version", "format_version"):
        assert ddp[key] == single[key], key
    assert ddp["lineage"]["trunk"]["weights_sha256"] == single["lineage"]["trunk"]["weights_sha256"]
    assert ddp["history"]["split"] == single["history"]["split"] and ddp["steps"] == 5
    losses = [s["loss"] for s in ddp["history"]["steps"]]
    assert len(losses) == 5 and all(math.isfinite(v) for v in losses)
    assert math.isfinite(ddp["metrics"]["val_loss"]) and math.isfinite(ddp["metrics"]["test_mse"])
    assert ddp["evaluation"]["summary"].keys() == single["evaluation"]["summary"].keys()
    # the global batch split over two ranks is the same optimisation as one process (up to float rounding)
    assert losses == pytest.approx([s["loss"] for s in single["history"]["steps"]], rel=1e-4)
    ours, theirs = load_file(str(directory / "weights.safetensors")), load_file(str(job.out / "weights.safetensors"))
    assert ours.keys() == theirs.keys()
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-4, atol=1e-5, msg=key)


def materialize(root: Path, selection: list[str], **training):
    curriculum = load_curriculum(root / "curriculum.yaml")
    resources = {"warehouse": WarehouseResource(path=str(root / "w.duckdb")),
                 "world": WorldSchemaResource(schema_path=""),
                 "training": TrainingResource(checkpoints_path=str(root / "checkpoints"), profile="",
                                              torch_threads=1, **training)}
    return dg.materialize(training_assets(curriculum), resources=resources, selection=selection,
                          instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def test_dagster_keeps_the_torchrun_checkpoint_and_launches_torchrun_itself(root, ddp_rates):
    assert ddp_rates.returncode == 0
    before = manifest_of(root / "checkpoints" / "rates")["weights_sha256"]
    kept = materialize(root, ["train/rates"])
    assert kept.success
    meta = {e.asset_key.path[-1]: e.materialization.metadata for e in kept.get_asset_materialization_events()}
    assert meta["rates"]["kept"].value and manifest_of(root / "checkpoints" / "rates")["weights_sha256"] == before
    # the asset itself runs torchrun with two processes for train/markets
    launched = materialize(root, ["train/markets"], ddp_processes=2)
    assert launched.success, [e.event_specific_data for e in launched.all_events if e.is_failure]
    markets = manifest_of(root / "checkpoints" / "markets")
    assert markets["distributed"]["world_size"] == 2 and markets["node"]["name"] == "markets"
    rows = duckdb.connect(str(root / "w.duckdb"), read_only=True).execute(
        "SELECT node, steps, weights_sha256 FROM checkpoints ORDER BY node").fetchall()
    assert rows == [("markets", 5, markets["weights_sha256"]), ("rates", 5, before)]


def test_a_failing_torchrun_names_the_node_and_the_exit_code(root):
    command = torchrun_command("no_such_node", 2, curriculum=root / "curriculum.yaml", profile="tiny",
                               warehouse=root / "w.duckdb", checkpoints=root / "checkpoints")
    lines: list[str] = []
    with pytest.raises(DDPLaunchError) as failure:
        run_torchrun(command, "no_such_node", 2, log=lines.append)
    message = str(failure.value)
    assert message.startswith("train/no_such_node: torchrun with 2 processes exited with code 1")
    assert "no node 'no_such_node'" in message and "rates, markets, join" in message
    assert any("no_such_node" in line for line in lines)  # the output was streamed to the log as it came
