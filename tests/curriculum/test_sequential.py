"""``CurriculumTrainer``: the whole curriculum in one process, phase by phase; unchanged inputs are kept, and
new data for one tier-0 node retrains that node and its descendants only (never the trunk)."""

from __future__ import annotations

import json

import pytest

from gwm_model.curriculum import CurriculumError
from gwm_model.curriculum.sequential import TRUNK, CurriculumTrainer
from gwm_model.training.checkpoint import MANIFEST_FILE
from tests.curriculum.helpers import node_canvas

# No validation split (the module-scoped `setup` in conftest.py reads this): these tests are about which nodes
# retrain, and a node that kept its starting weights (model selection, tested in tests/model) would hand its
# children unchanged inputs.
VALIDATION = False


def trainer(setup, world, out_dir, canvases=None, log=None):
    curriculum, built, embeddings = setup
    return CurriculumTrainer(curriculum, world, canvases or built, out_dir, embeddings=embeddings,
                             log=log if log is not None else (lambda message: None))


def weights_sha(out_dir, node: str) -> str:
    return json.loads((out_dir / node / MANIFEST_FILE).read_text())["weights_sha256"]


def test_run_trains_then_keeps_then_retrains_only_what_new_data_reaches(setup, world, tmp_path):
    curriculum, canvases, _ = setup
    out = tmp_path / "checkpoints"
    first_trainer = trainer(setup, world, out)
    assert first_trainer.phases() == [["rates", "markets"], ["join"]]
    first = first_trainer.run()
    assert first.status == {TRUNK: "trained", "rates": "trained", "markets": "trained", "join": "trained"}
    assert set(first.manifests) == {TRUNK, "rates", "markets", "join"}
    assert set(first.phase_seconds) == {TRUNK, "tier 0", "tier 1"}
    for name in ("rates", "markets", "join"):
        manifest = first.manifests[name]
        assert manifest["inputs_fingerprint"] and manifest["steps"] == 5
        assert manifest["lineage"]["trunk"]["weights_sha256"] == weights_sha(out, TRUNK)
    assert [p["weights_sha256"] for p in first.manifests["join"]["lineage"]["parents"]] == [
        weights_sha(out, "rates"), weights_sha(out, "markets")]
    before = {name: weights_sha(out, name) for name in (TRUNK, "rates", "markets", "join")}

    # the same inputs again (a new trainer, as after a restart): everything is kept, nothing rewritten
    stamps = {name: (out / name / MANIFEST_FILE).stat().st_mtime_ns for name in before}
    second = trainer(setup, world, out).run()
    assert second.status == {TRUNK: "kept", "rates": "kept", "markets": "kept", "join": "kept"}
    assert {name: (out / name / MANIFEST_FILE).stat().st_mtime_ns for name in before} == stamps
    assert second.manifests["join"] == first.manifests["join"]

    # new data for 'rates': it and its descendant 'join' retrain; 'markets' and the trunk are kept
    refreshed = dict(canvases)
    refreshed["rates"] = node_canvas(world, curriculum, "rates", seed=1, data_version="v2-rates")
    third = trainer(setup, world, out, refreshed).run()
    assert third.status == {TRUNK: "kept", "rates": "trained", "markets": "kept", "join": "trained"}
    after = {name: weights_sha(out, name) for name in before}
    assert after[TRUNK] == before[TRUNK] and after["markets"] == before["markets"]
    assert after["rates"] != before["rates"] and after["join"] != before["join"]
    assert third.manifests["rates"]["lineage"]["canvas_data_version"] == "v2-rates"
    assert third.manifests["join"]["lineage"]["parents"][0]["weights_sha256"] == after["rates"]
    assert third.manifests["join"]["lineage"]["parents"][1]["weights_sha256"] == before["markets"]
    # the trunk's manifest still records the data it was trained on
    assert third.manifests[TRUNK]["canvases"]["rates"] == canvases["rates"].data_version

    # and with those inputs settled, the next run keeps everything again
    fourth = trainer(setup, world, out, refreshed).run()
    assert set(fourth.status.values()) == {"kept"}


def test_run_of_one_node_trains_only_it_and_its_ancestors(setup, world, tmp_path):
    out = tmp_path / "checkpoints"
    logged: list[str] = []
    run = trainer(setup, world, out, log=logged.append).run(["markets"])
    assert run.status == {TRUNK: "trained", "markets": "trained"}
    assert not (out / "rates").exists() and not (out / "join").exists()
    assert any(m.startswith("trunk: 4 steps") for m in logged) and any(m.startswith("markets: 5 steps") for m in logged)
    with pytest.raises(CurriculumError, match="unknown node 'nope'"):
        trainer(setup, world, out).run(["nope"])


def test_missing_canvas_is_a_clear_error(setup, world, tmp_path):
    _, canvases, _ = setup
    partial = {k: v for k, v in canvases.items() if k != "markets"}
    with pytest.raises(CurriculumError, match="no canvas for node 'markets'"):
        trainer(setup, world, tmp_path / "checkpoints", partial).run()
