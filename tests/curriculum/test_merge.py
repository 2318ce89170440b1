"""Merging parents into a join's starting point (gwm_model.curriculum.merge): mean, weighted and TIES on
tensors small enough to check by hand, field rows by path, untrained parents left out, and a deeper child
grown from a real model that starts out computing exactly what its parent computes."""

from __future__ import annotations

import pytest
import torch

from gwm_model.curriculum.merge import LOOP_GAIN, instantiate, merge_parents, start_child
from gwm_model.curriculum.weights import NodeWeights
from gwm_model.nn.build import build_world_model
from gwm_model.nn.model import ModelConfig
from gwm_model.training.batches import WindowBatches
from tests.curriculum.helpers import SHARED_FIELD

SMALL = ModelConfig(d_model=4, n_heads=2, n_layers=1, n_loops=1)


def weights(name: str, shared: dict, rows: dict | None = None, *, steps: int = 5, data_size: float = 0.0,
            config: ModelConfig = SMALL) -> NodeWeights:
    """Node weights as a checkpoint would give them (``steps`` 0: a node that never trained)."""
    manifest = {"history": {"timing": {"steps": steps}}, "lineage": {"data_size": data_size}}
    return NodeWeights(name, config, {k: torch.as_tensor(v, dtype=torch.float32) for k, v in shared.items()},
                       {k: torch.as_tensor(v, dtype=torch.float32) for k, v in (rows or {}).items()},
                       manifest=manifest)


# -- shared parameters: mean, weighted, TIES ---------------------------------------------------------------------
def test_mean_is_elementwise_for_shared_keys_and_copies_the_rest():
    a = weights("a", {"w": [[1.0, 2.0], [3.0, 4.0]], "b": [1.0, -1.0], "only_a": [7.0], "odd": [1.0, 2.0]})
    b = weights("b", {"w": [[3.0, 0.0], [-3.0, 8.0]], "b": [0.0, 1.0], "odd": [5.0, 6.0, 7.0]})
    merged, report = merge_parents([a, b], "mean")
    torch.testing.assert_close(merged.shared["w"], torch.tensor([[2.0, 1.0], [0.0, 6.0]]))
    torch.testing.assert_close(merged.shared["b"], torch.tensor([0.5, 0.0]))
    torch.testing.assert_close(merged.shared["only_a"], torch.tensor([7.0]))
    # a key whose shapes disagree cannot be averaged: the first parent's is kept
    torch.testing.assert_close(merged.shared["odd"], torch.tensor([1.0, 2.0]))
    assert sorted(report.averaged) == ["b", "w"] and sorted(report.copied) == ["odd", "only_a"]
    assert (report.method, report.parents, report.used, report.skipped) == ("mean", ["a", "b"], ["a", "b"], [])
    assert report.weights == {} and merged.name == "a+b"
    assert "2 keys averaged, 2 copied" in report.summary()
    # the parents are not modified (the merge copies)
    torch.testing.assert_close(a.shared["only_a"], torch.tensor([7.0]))
    merged.shared["only_a"] += 1
    torch.testing.assert_close(a.shared["only_a"], torch.tensor([7.0]))


def test_weighted_merge_uses_each_parents_training_cells():
    a = weights("a", {"w": [0.0, 4.0]}, {"f": [4.0]}, data_size=100.0)
    b = weights("b", {"w": [8.0, 0.0]}, {"f": [0.0]}, data_size=300.0)
    merged, report = merge_parents([a, b], "weighted")
    torch.testing.assert_close(merged.shared["w"], torch.tensor([6.0, 1.0]))  # 0.25 a + 0.75 b
    torch.testing.assert_close(merged.field_rows["f"], torch.tensor([1.0]))
    assert report.weights == {"a": 100.0, "b": 300.0}
    # no parent recorded its data size: an equal-weight mean rather than a division by zero
    merged, _ = merge_parents([weights("a", {"w": [0.0, 4.0]}), weights("b", {"w": [8.0, 0.0]})], "weighted")
    torch.testing.assert_close(merged.shared["w"], torch.tensor([4.0, 2.0]))


def test_ties_trims_elects_a_sign_and_averages_the_agreeing_changes():
    base = weights("trunk", {"w": [1.0, 1.0, 1.0, 1.0]}, {"f": [0.0, 0.0, 0.0, 0.0]})
    # changes from the fork point: a (+3, +1, +0.1, -2), b (-1, +2, +0.2, -0.5)
    a = weights("a", {"w": [4.0, 2.0, 1.1, -1.0]}, {"f": [3.0, 1.0, 0.1, -2.0]})
    b = weights("b", {"w": [0.0, 3.0, 1.2, 0.5]}, {"f": [-1.0, 2.0, 0.2, -0.5]})
    merged, report = merge_parents([a, b], "ties", base=base, ties_density=0.5)
    # density 0.5 keeps each parent's two largest changes: a (+3, 0, 0, -2), b (-1, +2, 0, 0); the elected
    # signs (+, +, none, -) drop b's -1; each kept element is the mean of the changes that agree with it
    torch.testing.assert_close(merged.shared["w"], torch.tensor([4.0, 3.0, 1.0, -1.0]))
    torch.testing.assert_close(merged.field_rows["f"], torch.tensor([3.0, 2.0, 0.0, -2.0]))
    assert report.averaged == ["w"] and report.fields_averaged == 1
    # with every change kept, the two agreeing changes of element 1 are averaged
    merged, _ = merge_parents([a, b], "ties", base=base, ties_density=1.0)
    torch.testing.assert_close(merged.shared["w"], torch.tensor([4.0, 2.5, 1.15, -0.25]))
    # unlike the plain mean, which keeps a little of every change
    plain, _ = merge_parents([a, b], "mean")
    torch.testing.assert_close(plain.shared["w"], torch.tensor([2.0, 2.5, 1.15, -0.25]))


def test_unknown_method_empty_parents_and_ties_without_a_fork_point_are_refused():
    a, b = weights("a", {"w": [1.0]}), weights("b", {"w": [2.0]})
    with pytest.raises(ValueError, match="unknown merge method 'median'"):
        merge_parents([a, b], "median")
    with pytest.raises(ValueError, match="fork point"):
        merge_parents([a, b], "ties")
    with pytest.raises(ValueError, match="at least one parent"):
        merge_parents([], "mean")


# -- field rows and untrained parents ----------------------------------------------------------------------------
def test_field_rows_held_by_two_parents_are_averaged_by_one_copied():
    a = weights("a", {"w": [0.0]}, {"x": [1.0, 1.0], "shared": [2.0, 0.0]})
    b = weights("b", {"w": [0.0]}, {"shared": [4.0, -2.0], "y": [5.0, 5.0], "z": [6.0, 6.0]})
    merged, report = merge_parents([a, b], "mean")
    torch.testing.assert_close(merged.field_rows["shared"], torch.tensor([3.0, -1.0]))
    torch.testing.assert_close(merged.field_rows["x"], torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(merged.field_rows["y"], torch.tensor([5.0, 5.0]))
    assert set(merged.field_rows) == {"x", "shared", "y", "z"}
    assert (report.fields_averaged, report.fields_copied, report.fields_fresh) == (1, 3, 0)


def test_untrained_parent_is_skipped_unless_none_trained():
    trained = weights("trained", {"w": [2.0, 2.0]}, {"f": [1.0]}, data_size=10.0)
    empty = weights("empty", {"w": [0.0, 0.0]}, {"f": [0.0], "g": [9.0]}, steps=0, data_size=0.0)
    merged, report = merge_parents([trained, empty], "mean")
    assert (report.used, report.skipped) == (["trained"], ["empty"])
    torch.testing.assert_close(merged.shared["w"], torch.tensor([2.0, 2.0]))  # not halved by the fork-point copy
    torch.testing.assert_close(merged.field_rows["f"], torch.tensor([1.0]))
    assert "g" not in merged.field_rows  # nothing at all is taken from a skipped parent
    assert report.averaged == [] and report.copied == ["w"]
    assert "skipped untrained empty" in report.summary()

    other = weights("other", {"w": [4.0, 0.0]}, steps=0)
    merged, report = merge_parents([empty, other], "mean")
    assert (report.used, report.skipped) == (["empty", "other"], [])
    torch.testing.assert_close(merged.shared["w"], torch.tensor([2.0, 0.0]))


def test_a_parent_still_at_the_fork_point_gives_field_rows_but_does_not_dilute_the_shared_average():
    fork = weights("trunk", {"w": [0.0, 0.0], "b": [1.0]}, {"f": [0.5], "e": [0.25]})
    mover = weights("finance", {"w": [2.0, 4.0], "b": [3.0]}, {"f": [1.5]}, data_size=10.0)
    kept = weights("economics", {"w": [0.0, 0.0], "b": [1.0]}, {"f": [0.5], "e": [0.25]}, data_size=30.0)
    for method in ("mean", "weighted", "ties"):
        merged, report = merge_parents([mover, kept], method, base=fork, ties_density=1.0)
        assert (report.used, report.unchanged) == (["finance", "economics"], ["economics"]), method
        torch.testing.assert_close(merged.shared["w"], torch.tensor([2.0, 4.0]))  # not halved toward the fork
        torch.testing.assert_close(merged.shared["b"], torch.tensor([3.0]))
        # rows are merged over both parents as before (mean 1.0, weighted by cells 0.75, ties keeps the change 1.5)
        expected = {"mean": 1.0, "weighted": 0.75, "ties": 1.5}[method]
        torch.testing.assert_close(merged.field_rows["f"], torch.tensor([expected]))
        torch.testing.assert_close(merged.field_rows["e"], torch.tensor([0.25]))
    assert "field rows only from economics" in report.summary()
    # one element away from the fork point is a change: the parent is averaged as before
    moved = weights("economics", {"w": [0.0, 0.0], "b": [1.5]}, {"e": [0.25]})
    merged, report = merge_parents([mover, moved], "mean", base=fork)
    assert report.unchanged == [] and torch.equal(merged.shared["w"], torch.tensor([1.0, 2.0]))
    # without the fork point nothing can be compared: a plain mean; and parents all at the fork stay averaged
    assert merge_parents([mover, kept], "mean")[1].unchanged == []
    merged, report = merge_parents([kept, weights("twin", {"w": [0.0, 0.0], "b": [1.0]})], "mean", base=fork)
    assert report.unchanged == [] and torch.equal(merged.shared["w"], torch.tensor([0.0, 0.0]))


# -- real models: fresh field rows, a deeper child, loop gains of parents of different depth ---------------------


def model_for(setup, world, node: str, config: ModelConfig, seed: int, randomise: bool = True):
    curriculum, canvases, embeddings = setup
    torch.manual_seed(seed)
    model = build_world_model(canvases[node], curriculum[node].projection(world), config, embeddings=embeddings)
    if randomise:  # a trained-looking model: every parameter (decoder, gains, branch scales) away from its init
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter) * 0.2)
    return model.eval()


def outputs(model, canvas) -> torch.Tensor:
    batches = WindowBatches(canvas, 6, 2)
    batch = batches(torch.arange(10, 18))
    with torch.no_grad():
        return model(batch["inputs"], batch["visible"], batches.step_offset, batch["day_of_year"])


def test_child_field_no_parent_has_starts_at_zero_and_is_counted_fresh(setup, world):
    curriculum, canvases, embeddings = setup
    rates = NodeWeights.from_model("rates", model_for(setup, world, "rates", SMALL, 1), {"history": {
        "timing": {"steps": 3}}})
    markets = NodeWeights.from_model("markets", model_for(setup, world, "markets", SMALL, 2), {"history": {
        "timing": {"steps": 3}}})
    merged, report = merge_parents([rates, markets], "mean")
    # rates has 4 fields, markets 5: the two-year rate is in both, the other 7 in one
    assert (report.fields_averaged, report.fields_copied) == (1, 7)
    child = build_world_model(canvases["join"], curriculum["join"].projection(world), SMALL, embeddings=embeddings)
    start_child(child, merged, report)
    fields = list(child.plan.fields)
    fresh = [p for p in fields if p not in rates.field_rows and p not in markets.field_rows]
    assert fresh == ["country_us.macro.inflation", "country_us.macro.inflation.core_cpi"]
    assert report.fields_fresh == len(fresh)
    assert report.fresh == [] and report.zero_initialised_blocks == []  # same depth: every shared key loaded
    offsets = child.field_offset.detach()
    for path in fresh:
        assert torch.count_nonzero(offsets[fields.index(path)]) == 0
    torch.testing.assert_close(offsets[fields.index(SHARED_FIELD)],
                               (rates.field_rows[SHARED_FIELD] + markets.field_rows[SHARED_FIELD]) / 2)
    sp500 = "financial.equities.indices.sp500"
    torch.testing.assert_close(offsets[fields.index(sp500)], markets.field_rows[sp500])
    state = child.state_dict()
    assert sorted(report.averaged) == sorted(rates.shared)
    for key in rates.shared:
        torch.testing.assert_close(state[key], (rates.shared[key] + markets.shared[key]) / 2)
    assert "fresh" in report.summary() and "2 fresh" in report.summary()


def test_deeper_child_starts_as_exactly_its_parent(setup, world):
    curriculum, canvases, embeddings = setup
    shallow = ModelConfig(d_model=8, n_heads=2, n_layers=1, n_loops=2)
    deep = ModelConfig(d_model=8, n_heads=2, n_layers=2, n_loops=2)
    parent = model_for(setup, world, "rates", shallow, 3)
    assert torch.count_nonzero(parent.backbone.loop_gain) == parent.backbone.loop_gain.numel()
    weights_ = NodeWeights.from_model("rates", parent)
    canvas, projection = canvases["rates"], curriculum["rates"].projection(world)

    child = build_world_model(canvas, projection, deep, embeddings=embeddings)
    report = start_child(child, weights_)
    assert report.zero_initialised_blocks == [1]
    assert report.fresh and all(k.startswith("backbone.blocks.1.") for k in report.fresh)
    assert LOOP_GAIN not in report.fresh
    gain = child.backbone.loop_gain.detach()
    torch.testing.assert_close(gain[:, :1], parent.backbone.loop_gain.detach())
    assert torch.count_nonzero(gain[:, 1]) == 0
    assert torch.count_nonzero(child.backbone.blocks[1].branch_scale) == 0
    expected = outputs(parent, canvas)
    assert torch.allclose(outputs(child.eval(), canvas), expected, atol=1e-6)
    # instantiate does the same in one call
    grown = instantiate(weights_, canvas, projection, deep, embeddings)
    assert grown.config.n_layers == 2 and not grown.training
    assert torch.allclose(outputs(grown, canvas), expected, atol=1e-6)
    # the equality comes from the zero-initialised block: copying the weights alone gives another model
    plain = build_world_model(canvas, projection, deep, embeddings=embeddings)
    weights_.apply_to(plain)
    assert not torch.allclose(outputs(plain.eval(), canvas), expected, atol=1e-3)


def test_parents_of_different_depth_merge_loop_gains_column_by_column(setup, world):
    curriculum, canvases, embeddings = setup
    shallow = ModelConfig(d_model=8, n_heads=2, n_layers=1, n_loops=2)
    deep = ModelConfig(d_model=8, n_heads=2, n_layers=2, n_loops=2)
    trained = {"history": {"timing": {"steps": 3}}}
    a = NodeWeights.from_model("a", model_for(setup, world, "rates", shallow, 4), trained)
    b = NodeWeights.from_model("b", model_for(setup, world, "rates", deep, 5), trained)
    merged, report = merge_parents([a, b], "mean")
    gain_a, gain_b = a.shared[LOOP_GAIN], b.shared[LOOP_GAIN]
    assert gain_a.shape == (2, 1) and gain_b.shape == (2, 2)
    expected = torch.stack([(gain_a[:, 0] + gain_b[:, 0]) / 2, gain_b[:, 1]], dim=1)
    torch.testing.assert_close(merged.shared[LOOP_GAIN], expected)
    assert LOOP_GAIN in report.averaged
    key = "backbone.blocks.1.branch_scale"
    assert key in report.copied and torch.equal(merged.shared[key], b.shared[key])
    zero = "backbone.blocks.0.branch_scale"
    assert zero in report.averaged
    torch.testing.assert_close(merged.shared[zero], (a.shared[zero] + b.shared[zero]) / 2)
    assert merged.config.n_layers == 2  # the merge has the deeper parent's architecture
    # a child as deep as the deeper parent loads everything; one deeper still gets a zero-initialised block
    child = build_world_model(canvases["rates"], curriculum["rates"].projection(world), deep, embeddings=embeddings)
    assert start_child(child, merged, report).zero_initialised_blocks == []
    torch.testing.assert_close(child.backbone.loop_gain.detach(), expected)
    deeper = ModelConfig(d_model=8, n_heads=2, n_layers=3, n_loops=2)
    child = build_world_model(canvases["rates"], curriculum["rates"].projection(world), deeper, embeddings=embeddings)
    report = start_child(child, merged)
    assert report.zero_initialised_blocks == [2]
    torch.testing.assert_close(child.backbone.loop_gain.detach()[:, :2], expected)
