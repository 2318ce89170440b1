"""Training curriculum nodes (gwm_model.curriculum.node_training): a trunk, two tier-0 nodes forked from it and
a join merging both, on synthetic canvases; what the join's checkpoint records (lineage by weights hash, merge
report, merge quality, metrics) and that it reloads alone; merge-quality sanity on identical parents; bad
inputs refused before anything trains; a node without data."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil

import numpy as np
import polars as pl
import pytest
import torch

from gwm_model.curriculum import node_training
from gwm_model.curriculum.merge import merge_parents
from gwm_model.curriculum.merge_quality import ALPHAS, ParentView, merge_quality
from gwm_model.curriculum.node_training import ParentInput, train_node
from gwm_model.curriculum.trunk import TrunkInput, save_trunk, train_trunk
from gwm_model.curriculum.validation import window_loss
from gwm_model.curriculum.weights import load_node_weights, state_digest
from gwm_model.inference import WorldModel
from gwm_model.nn.build import build_world_model
from gwm_model.synthetic import EQUITY, MACRO, TEN_YEAR
from gwm_model.training.checkpoint import MANIFEST_FILE, WEIGHTS_FILE, CheckpointError, load_model, save_checkpoint
from gwm_model.training.objectives import MaskingConfig, hides_only_the_unpublished
from tests.curriculum.helpers import FRESH_FIELDS, TIER0, build_world, embeddings_in, node_canvas, tiny_curriculum


def quiet(message: str) -> None:
    pass


@pytest.fixture(scope="module")
def trained(world, tmp_path_factory):
    """Trunk, both tier-0 nodes and the join, trained once for the module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    curriculum = tiny_curriculum()
    built = build_world(world, curriculum)
    root = tmp_path_factory.mktemp("curriculum")
    embeddings = embeddings_in(root / "gwm_cache", world)
    hyper = curriculum.trunk_hyperparameters()
    inputs = [TrunkInput(n, built.canvases[n], curriculum[n].projection(world)) for n in TIER0]
    trunk = train_trunk(inputs, hyper.model, hyper.train, embeddings)
    trunk_manifest = save_trunk(root / "trunk", trunk, hyper, inputs, "trunk-fingerprint")
    results = {}
    for name in TIER0:
        results[name] = train_node(curriculum[name], built.canvases[name], curriculum[name].projection(world),
                                   curriculum.hyperparameters(name), root / name, root / "trunk",
                                   embeddings=embeddings, log=quiet)
    parents = [ParentInput(n, root / n, built.canvases[n], curriculum[n].projection(world)) for n in TIER0]
    messages: list[str] = []
    results["join"] = train_node(curriculum["join"], built.canvases["join"], curriculum["join"].projection(world),
                                 curriculum.hyperparameters("join"), root / "join", root / "trunk", parents,
                                 embeddings=embeddings, log=messages.append, extra_manifest={"inputs_fingerprint": "x"})
    yield {"curriculum": curriculum, "world": built, "root": root, "embeddings": embeddings, "trunk": trunk,
           "trunk_manifest": trunk_manifest, "results": results, "parents": parents, "messages": messages}
    torch.set_num_threads(threads)


def manifest_of(directory) -> dict:
    return json.loads((directory / MANIFEST_FILE).read_text())


def test_trunk_trains_on_both_tier0_canvases_and_records_them(trained):
    trunk, manifest = trained["trunk"], trained["trunk_manifest"]
    assert trunk.steps == 4 and trunk.trained_on == list(TIER0) and trunk.skipped == {}
    assert [row["canvas"] for row in trunk.losses] == ["rates", "markets", "rates", "markets"]
    assert manifest["kind"] == "trunk" and manifest["inputs_fingerprint"] == "trunk-fingerprint"
    assert manifest["canvases"] == {n: trained["world"].canvases[n].data_version for n in TIER0}
    # the trunk holds the field rows of every tier-0 canvas, keyed by path
    rows = load_node_weights(trained["root"] / "trunk", "trunk").field_rows
    for name in TIER0:
        for path in load_model(trained["root"] / name)[0].fields:
            assert path in rows, (name, path)


def test_tier0_nodes_fork_from_the_trunk(trained):
    trunk_sha = trained["trunk_manifest"]["weights_sha256"]
    for name in TIER0:
        result = trained["results"][name]
        manifest = manifest_of(trained["root"] / name)
        assert result.trained and result.steps == 5 and manifest["steps"] == 5
        assert manifest["lineage"]["trunk"]["weights_sha256"] == trunk_sha
        assert manifest["lineage"]["parents"] == []
        assert manifest["merge"]["report"]["method"] == "fork" and manifest["merge"]["quality"] is None
        assert manifest["merge"]["report"]["fields_fresh"] == 0  # every field row comes from the trunk
        assert manifest["lineage"]["data_size"] > 0


def test_join_records_lineage_merge_and_quality(trained):
    root, result = trained["root"], trained["results"]["join"]
    manifest = manifest_of(root / "join")
    lineage = manifest["lineage"]
    assert [p["name"] for p in lineage["parents"]] == list(TIER0)
    for entry in lineage["parents"]:
        assert entry["weights_sha256"] == manifest_of(root / entry["name"])["weights_sha256"]
        assert entry["weights_sha256"] == trained["results"][entry["name"]].weights_sha256
    assert lineage["trunk"]["weights_sha256"] == trained["trunk_manifest"]["weights_sha256"]
    assert lineage["canvas_data_version"] == trained["world"].canvases["join"].data_version
    assert manifest["inputs_fingerprint"] == "x" and manifest["profile"] == "tiny"
    assert manifest["hyperparameters"]["model"]["n_layers"] == 2 and manifest["model"]["n_layers"] == 2

    report = manifest["merge"]["report"]
    assert report["method"] == "mean" and report["used"] == list(TIER0) and report["skipped"] == []
    # a parent whose selection kept its starting weights is still at the fork point: only its field rows merge
    for name in report["unchanged"]:
        assert trained["results"][name].history.best_step == 0, name
    assert bool(report["averaged"]) is (len(TIER0) - len(report["unchanged"]) > 1)
    assert all(not k.startswith("backbone.blocks.1.") for k in report["averaged"] + report["copied"])
    assert report["zero_initialised_blocks"] == [1]  # the join is one layer deeper than its parents
    assert (report["fields_averaged"], report["fields_copied"], report["fields_fresh"]) == (1, 7, len(FRESH_FIELDS))
    assert result.merge_report.zero_initialised_blocks == [1]

    quality = manifest["merge"]["quality"]
    assert set(quality["parents"]) == set(TIER0)
    for name, measures in quality["parents"].items():
        assert measures["val_windows"] > 0, name
        assert "surviving_share" in measures
        share = measures["surviving_share"]
        assert share is None or math.isfinite(share)
        assert math.isfinite(measures["ensemble_gap"]) and measures["barrier"] >= 0.0
        assert [p["alpha"] for p in measures["path"]] == list(ALPHAS)
        assert measures["path"][0]["loss"] == measures["loss_parent"]
        assert measures["path"][-1]["loss"] == measures["loss_merged"]
        assert all(math.isfinite(p["loss"]) for p in measures["path"])
    assert quality["max_barrier"] == max(m["barrier"] for m in quality["parents"].values())
    assert quality["worst_ensemble_gap"] == max(m["ensemble_gap"] for m in quality["parents"].values())

    after = manifest["merge"]["child_vs_parents"]
    assert set(after["parents"]) == set(TIER0)
    for measures in after["parents"].values():
        assert measures["child_minus_parent"] == pytest.approx(measures["loss_child"] - measures["loss_parent"])
    assert after["worst_child_minus_parent"] == max(m["child_minus_parent"] for m in after["parents"].values())

    metrics = manifest["metrics"]
    assert metrics["val_skill"] is not None and math.isfinite(metrics["val_skill"])
    assert metrics == result.metrics
    assert manifest["steps"] == 5 and result.trained
    assert any("mean merge of rates, markets" in m for m in trained["messages"])


def test_join_checkpoint_reloads_and_predicts_from_its_directory_alone(trained):
    root = trained["root"] / "join"
    model, manifest = load_model(root)
    assert set(FRESH_FIELDS) <= set(model.fields) and model.config.n_layers == 2
    # a copy elsewhere, away from the curriculum's other checkpoints, still loads and predicts
    alone = trained["root"].parent / "alone_join"
    shutil.copytree(root, alone)
    world_model = WorldModel.load(alone)
    frame = world_model.observe(trained["world"].observations, as_of="2002-06-12").predict(
        [TEN_YEAR, EQUITY, MACRO], horizon=2)
    predicted = frame[frame["kind"] == "predicted"]
    assert set(predicted["field_path"]) == {TEN_YEAR, EQUITY, MACRO}
    assert np.isfinite(predicted["mean"].to_numpy()).all()


def test_merging_identical_parents_keeps_everything(trained, world):
    """Two copies of one parent that gained over the fork point: the merge is the parent itself, so it keeps
    all of the gain, matches the ensemble and has no barrier."""
    curriculum, canvases = trained["curriculum"], trained["world"].canvases
    hyper = curriculum.hyperparameters("rates")
    hyper = dataclasses.replace(hyper, train=dataclasses.replace(hyper.train, steps=20))
    out = trained["root"] / "rates_longer"
    train_node(curriculum["rates"], canvases["rates"], curriculum["rates"].projection(world), hyper, out,
               trained["root"] / "trunk", embeddings=trained["embeddings"], log=quiet)
    parent = load_node_weights(out, "rates")
    twin = dataclasses.replace(parent, name="twin")
    trunk = load_node_weights(trained["root"] / "trunk", "trunk")
    merged, _ = merge_parents([parent, twin], "mean", base=trunk)
    assert state_digest(merged) == state_digest(parent)
    views = [ParentView(w.name, w, canvases["rates"], curriculum["rates"].projection(world)) for w in (parent, twin)]
    quality = merge_quality(views, trunk, merged, hyper.train, trained["embeddings"], max_windows=32)
    for measures in quality["parents"].values():
        assert measures["loss_parent"] < measures["loss_fork"], "precondition: the parent gained over the trunk"
        assert measures["surviving_share"] == pytest.approx(1.0, abs=1e-6)
        assert measures["forecast_loss_merged"] == pytest.approx(measures["forecast_loss_parent"], abs=1e-9)
        assert measures["forecast_loss_parent"] != pytest.approx(measures["loss_parent"])  # no masking draw
        if measures["forecast_loss_parent"] < measures["forecast_loss_fork"]:
            assert measures["forecast_surviving_share"] == pytest.approx(1.0, abs=1e-6)
        assert measures["ensemble_gap"] == pytest.approx(0.0, abs=1e-6)
        assert measures["barrier"] == pytest.approx(0.0, abs=1e-6)
        assert len({round(p["loss"], 6) for p in measures["path"]}) == 1
    assert quality["worst_surviving_share"] == pytest.approx(1.0, abs=1e-6)
    # and a merge that lost the gain entirely (the fork point itself) keeps none of it
    lost = merge_quality(views[:1], trunk, trunk, hyper.train, trained["embeddings"], max_windows=32)
    assert lost["parents"]["rates"]["surviving_share"] == pytest.approx(0.0, abs=1e-6)
    rates = lost["parents"]["rates"]
    assert rates["forecast_loss_merged"] == pytest.approx(rates["forecast_loss_fork"], abs=1e-9)


def test_with_no_random_hiding_the_masked_and_forecasting_measures_are_one(trained, world):
    """The ``cpu`` profile's masking (rates 0) hides only what publication hides, so the merge measures read the
    forecasting losses from the masked ones instead of computing them again; they equal a fresh computation."""
    curriculum, canvases = trained["curriculum"], trained["world"].canvases
    hyper = curriculum.hyperparameters("rates")
    train = dataclasses.replace(hyper.train, masking=MaskingConfig(cell_rate=0.0, field_rate=0.0, span_rate=0.0))
    assert hides_only_the_unpublished(train.masking) and not hides_only_the_unpublished(MaskingConfig())
    parent = load_node_weights(trained["root"] / "rates", "rates")
    trunk = load_node_weights(trained["root"] / "trunk", "trunk")
    view = ParentView("rates", parent, canvases["rates"], curriculum["rates"].projection(world))
    anchors = view.windows(train, 32)
    measures = merge_quality([view], trunk, trunk, train, trained["embeddings"], max_windows=32)["parents"]["rates"]
    fresh = window_loss(view.model(parent, view.config_against(trunk), train, trained["embeddings"]), view.canvas,
                        anchors, train, extra_hiding=False)
    assert measures["forecast_loss_parent"] == measures["loss_parent"] == pytest.approx(fresh, rel=1e-6)
    assert measures["forecast_surviving_share"] == measures["surviving_share"]


# -- bad inputs: refused before anything trains ------------------------------------------------------------------
def attempt_join(trained, world, tmp_path, parents):
    """Train the join on ``parents``, expecting a CheckpointError before any merging or training."""
    curriculum = trained["curriculum"]
    out = tmp_path / "join_out"

    def too_late(*args, **kwargs):
        raise AssertionError("the node went on to merge or train before its inputs were checked")

    with pytest.MonkeyPatch.context() as patch, pytest.raises(CheckpointError) as error:
        for name in ("start_node", "merge_quality", "fit_model", "save_checkpoint"):
            patch.setattr(node_training, name, too_late)
        train_node(curriculum["join"], trained["world"].canvases["join"], curriculum["join"].projection(world),
                   curriculum.hyperparameters("join"), out, trained["root"] / "trunk", parents,
                   embeddings=trained["embeddings"], log=quiet)
    assert not out.exists(), "a checkpoint directory was written for a node whose inputs are bad"
    return str(error.value)


def copied_parent(trained, tmp_path, name: str) -> ParentInput:
    original = next(p for p in trained["parents"] if p.name == name)
    directory = tmp_path / f"copy_{name}"
    shutil.copytree(original.checkpoint, directory)
    return dataclasses.replace(original, checkpoint=directory)


def with_parent(trained, replacement: ParentInput) -> list[ParentInput]:
    return [replacement if p.name == replacement.name else p for p in trained["parents"]]


def test_corrupted_parent_weights_name_the_node_and_the_file(trained, world, tmp_path):
    parent = copied_parent(trained, tmp_path, "rates")
    weights = parent.checkpoint / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    message = attempt_join(trained, world, tmp_path, with_parent(trained, parent))
    assert "'join'" in message and "'rates'" in message and str(weights) in message
    assert "sha256" in message and "rematerialize train/rates" in message


def test_missing_parent_checkpoint_is_refused(trained, world, tmp_path):
    parent = dataclasses.replace(trained["parents"][1], checkpoint=tmp_path / "never_trained")
    message = attempt_join(trained, world, tmp_path, with_parent(trained, parent))
    assert "'join'" in message and "'markets'" in message
    assert str(tmp_path / "never_trained" / MANIFEST_FILE) in message and "materialize train/markets" in message


def test_parent_trained_on_another_schema_is_refused(trained, world, tmp_path):
    parent = copied_parent(trained, tmp_path, "markets")
    path = parent.checkpoint / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest["canvas"]["schema_hash"] = "0123456789abcdef"
    path.write_text(json.dumps(manifest))
    load_node_weights(parent.checkpoint, "markets")  # the weights still match their hash: only the schema differs
    message = attempt_join(trained, world, tmp_path, with_parent(trained, parent))
    assert "'join'" in message and "0123456789abcdef" in message and world.schema_hash in message
    assert str(path) in message


def test_parent_of_another_width_is_refused(trained, world, tmp_path):
    curriculum, canvases = trained["curriculum"], trained["world"].canvases
    hyper = curriculum.hyperparameters("rates")
    narrow = dataclasses.replace(hyper.model, d_model=8)
    projection = curriculum["rates"].projection(world)
    model = build_world_model(canvases["rates"], projection, narrow, embeddings=trained["embeddings"])
    directory = tmp_path / "narrow_rates"
    specs = {f.path: f for f in projection.fields}
    save_checkpoint(directory, model, canvases["rates"], hyper.train.to_dict(),
                    {p: specs[p].period_days for p in model.plan.fields}, {"history": {"timing": {"steps": 5}}})
    parent = dataclasses.replace(trained["parents"][0], checkpoint=directory)
    message = attempt_join(trained, world, tmp_path, with_parent(trained, parent))
    assert "'join'" in message and "d_model=8" in message and "16" in message


def test_parents_other_than_the_declared_ones_are_refused(trained, world, tmp_path):
    message = attempt_join(trained, world, tmp_path, trained["parents"][:1])
    assert "declares parents ['rates', 'markets']" in message


# -- a node without data ----------------------------------------------------------------------------------------
def test_node_without_data_is_not_trained_but_checkpointed(trained, world, tmp_path):
    curriculum = trained["curriculum"]
    rates = trained["world"].canvases["rates"]
    nothing = trained["world"].observations.filter(pl.col("field_path") == MACRO)  # no yield-curve data at all
    canvas = node_canvas(world, curriculum, "rates", observations=nothing, data_version="empty")
    assert not canvas.presence.any() and canvas.num_steps == rates.num_steps
    messages: list[str] = []
    out = tmp_path / "rates_empty"
    result = train_node(curriculum["rates"], canvas, curriculum["rates"].projection(world),
                        curriculum.hyperparameters("rates"), out, trained["root"] / "trunk",
                        embeddings=trained["embeddings"], log=messages.append)
    assert not result.trained and result.steps == 0 and result.evaluation is None
    assert re.search(r"no data", result.note) and "not trained" in result.note and "trunk" in result.note
    assert any("no data" in m for m in messages)
    manifest = manifest_of(out)
    assert manifest["steps"] == 0 and manifest["note"] == result.note and manifest["train"]["steps"] == 0
    assert manifest["metrics"]["val_skill"] is None and manifest["lineage"]["data_size"] == 0.0
    model, _ = load_model(out)
    assert model.fields == ("financial.yield_curves",)  # the hub of the node's structure
    # its weights are its starting point, the trunk's
    trunk = load_node_weights(trained["root"] / "trunk", "trunk")
    node = load_node_weights(out, "rates")
    assert not node.trained
    for key, value in trunk.shared.items():
        assert torch.equal(node.shared[key], value), key
    assert torch.equal(node.field_rows["financial.yield_curves"], trunk.field_rows["financial.yield_curves"])
