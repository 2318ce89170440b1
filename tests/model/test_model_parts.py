"""The parts of the world model one at a time, on real components: MiniLM field embeddings and their cache,
token geometry, the looped backbone's connectivity and zero-initialised loops, the model's persistence start,
masking and the masked loss, diffusion, trainer options, loggers, checkpoints and a frozen CogVideoX backbone.

Models are tiny (``d_model`` 16) and runs short so the file stays fast on two CPU cores. Tests not about field
meaning use a deterministic stand-in for MiniLM, and every field-embedding cache lives under a temporary
directory (``GWM_CACHE``), never in the user's home.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import re

import numpy as np
import polars as pl
import pytest
import torch

from gwm_model.canvas import build_canvas, make_time_axis
from gwm_model.canvas.connectivity import Connectivity
from gwm_model.nn.build import build_world_model
from gwm_model.nn.field_text import TEXT_DIM, FieldEmbeddings, field_text, minilm_embedder
from gwm_model.nn.geometry import TokenPlan, active_paths
from gwm_model.nn.looped import LoopedBackbone
from gwm_model.nn.model import ModelConfig, carry_forward
from gwm_model.schema.world import load_schema
from gwm_model.synthetic import FIVE_YEAR, PATHS, TWO_YEAR, synthetic_world
from gwm_model.training import ordering
from gwm_model.training.batches import WindowBatches, split_anchors
from gwm_model.training.checkpoint import (
    FROZEN_PREFIX,
    MANIFEST_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    file_sha256,
    load_model,
    save_checkpoint,
)
from gwm_model.training.config import TrainConfig
from gwm_model.training.loggers import CallbackLogger, read_jsonl
from gwm_model.training.objectives import (
    CosineSchedule,
    MaskingConfig,
    hide_cells,
    masked_loss,
    period_noise_scale,
)
from gwm_model.training.steps import Objective
from gwm_model.training.trainer import Trainer, TrainHistory, lr_factor
from tests.conftest import MINI_SCHEMA

CARBON = "physical.climate.carbon_ppm"
CONTEXT, HORIZON = 8, 2
TINY = ModelConfig(d_model=16, n_heads=2, n_layers=1, n_loops=2)
FUTURE_ONLY = MaskingConfig(cell_rate=0.0, field_rate=0.0, span_rate=0.0, future_rate=1.0)


def fake_embed(texts: list[str]) -> np.ndarray:
    """Deterministic (across processes too) unit vectors standing in for MiniLM where meaning is not tested."""
    rows = [np.random.default_rng(int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")).normal(size=384)
            for t in texts]
    out = np.stack(rows) if rows else np.zeros((0, TEXT_DIM))
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def refuse_to_embed(texts: list[str]) -> np.ndarray:
    raise AssertionError(f"the embedder was called for {texts}; the cache should have served these fields")


def train_config(**kw) -> TrainConfig:
    settings = dict(context=CONTEXT, horizon=HORIZON, batch_size=16, steps=6, lr=3e-3, warmup_steps=2,
                    weight_decay=0.0, patience=100, val_fraction=0.15, masking=MaskingConfig(), loggers=(),
                    device="cpu", seed=0)
    return TrainConfig(**{**settings, **kw})


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory):
    """Field-embedding caches of this module go to a temporary directory (build_world_model's default cache);
    torch runs on one thread here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models gain nothing from more threads, and results do not depend on the split
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GWM_CACHE", str(tmp_path_factory.mktemp("gwm_cache")))
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def synthetic(world):
    sw = synthetic_world(seed=0, weeks=400)
    projection = world.project(PATHS)
    canvas = build_canvas(sw.observations, projection, make_time_axis(sw.start, sw.end, "weekly"), sw.train_end)
    return sw, projection, canvas


def tiny_model(synthetic, seed: int = 0, config: ModelConfig = TINY):
    _, projection, canvas = synthetic
    torch.manual_seed(seed)
    return build_world_model(canvas, projection, config, embeddings=fake_embed)


def window_batch(synthetic, anchors=None):
    canvas = synthetic[2]
    batches = WindowBatches(canvas, CONTEXT, HORIZON)
    anchors = np.arange(60, 76) if anchors is None else anchors
    return batches, batches(anchors)


# -- 1. field text embeddings (real MiniLM) ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm(world, tmp_path_factory):
    """Real MiniLM, loaded once; a counting wrapper records every batch of texts it embeds."""
    real = minilm_embedder()
    calls: list[list[str]] = []

    def counting(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return real(texts)

    specs = {f.path: f for f in world.fields}
    cache = tmp_path_factory.mktemp("field_text")
    first = FieldEmbeddings(world.schema_hash, cache, embed=counting)
    chosen = [specs[p] for p in (TWO_YEAR, FIVE_YEAR, CARBON)]
    vectors = first(chosen)
    return {"cache": cache, "calls": calls, "embed": counting, "specs": specs, "chosen": chosen,
            "vectors": vectors, "first": first}


def test_field_embeddings_are_cached_on_disk_and_reused_bit_identically(minilm, world):
    path = minilm["cache"] / f"field-embeddings-{world.schema_hash}.safetensors"
    assert path.is_file() and minilm["first"].path == path
    assert len(minilm["calls"]) == 1 and len(minilm["calls"][0]) == 3  # one batch for the three missing fields
    vectors = minilm["vectors"]
    assert vectors.shape == (3, TEXT_DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    again = FieldEmbeddings(world.schema_hash, minilm["cache"], embed=refuse_to_embed)(minilm["chosen"])
    assert np.array_equal(again, vectors)
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        assert f.metadata()["schema_hash"] == world.schema_hash
        assert {k[0] for k in json.loads(f.metadata()["keys"])} == {TWO_YEAR, FIVE_YEAR, CARBON}


def test_a_field_gets_the_same_vector_in_every_node(minilm, world, tmp_path):
    specs, vectors = minilm["specs"], minilm["vectors"]
    # a second node sharing the cache asks for a subset in another order: the very same vectors
    node = FieldEmbeddings(world.schema_hash, minilm["cache"], embed=refuse_to_embed)
    subset = node([specs[CARBON], specs[TWO_YEAR]])
    assert np.array_equal(subset, vectors[[2, 0]])
    # a node with its own empty cache embeds them in a different batch: still the same vector per field
    before = len(minilm["calls"])
    fresh = FieldEmbeddings(world.schema_hash, tmp_path, embed=minilm["embed"])
    other = fresh([specs[CARBON], specs["financial.yield_curves.ten_year"], specs[TWO_YEAR]])
    assert len(minilm["calls"]) == before + 1
    np.testing.assert_allclose(other[[0, 2]], vectors[[2, 0]], atol=1e-5)


def test_related_fields_start_out_close(minilm):
    two, five, carbon = minilm["vectors"]
    assert float(two @ five) > float(two @ carbon) + 0.1, (float(two @ five), float(two @ carbon))


def test_an_edited_description_is_re_embedded(minilm, world):
    specs, vectors = minilm["specs"], minilm["vectors"]
    edited = dataclasses.replace(specs[TWO_YEAR], description="Rainfall over the Amazon basin in millimetres")
    cache = FieldEmbeddings(world.schema_hash, minilm["cache"], embed=minilm["embed"])
    before = len(minilm["calls"])
    new = cache([edited, specs[FIVE_YEAR]])
    assert minilm["calls"][before:] == [[field_text(edited)]]  # only the edited field is embedded
    assert np.array_equal(new[1], vectors[1])
    assert float(new[0] @ vectors[0]) < 0.95
    # both versions are on disk now: the old one still serves the unedited schema
    reread = FieldEmbeddings(world.schema_hash, minilm["cache"], embed=refuse_to_embed)
    assert np.array_equal(reread([specs[TWO_YEAR]])[0], vectors[0])
    assert np.array_equal(reread([edited])[0], new[0])


# -- 2. geometry ------------------------------------------------------------------------------------------------
VOL, EQUITY_MINI, CPI_MINI, GDP_MINI = "markets.vol", "markets.equity", "country_us.prices.cpi", "country_us.gdp"
VOL_SLOTS = 6


def mini_observations(paths: tuple[str, ...]) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    days = np.datetime64("2020-01-06") + 7 * np.arange(60)
    frames = []
    for path in paths:
        vectors = rng.normal(size=(days.size, VOL_SLOTS)) if path == VOL else None
        frames.append(pl.DataFrame({
            "field_path": [path] * days.size, "ts": days.astype("datetime64[D]"),
            "available_at": (days + 1).astype("datetime64[us]"), "value": rng.normal(size=days.size),
            "vector": pl.Series([None] * days.size, dtype=pl.List(pl.Float32)) if vectors is None
            else pl.Series(vectors.astype(np.float32).tolist(), dtype=pl.List(pl.Float32)),
            "source": ["test"] * days.size}))
    return pl.concat(frames)


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    path = tmp_path_factory.mktemp("mini_schema") / "mini.yaml"
    path.write_text(MINI_SCHEMA)
    projection = load_schema(path).project()
    axis = make_time_axis("2020-01-06", "2021-03-01", "weekly")

    def canvas(paths):
        return build_canvas(mini_observations(paths), projection, axis, "2020-09-30", vector_slots={VOL: VOL_SLOTS})

    return projection, canvas


def test_token_plan_keeps_fields_with_data_and_their_hubs(mini):
    projection, make = mini
    only_cpi = TokenPlan.from_canvas(make((CPI_MINI,)), channels=2)
    assert only_cpi.fields == ("country_us", "country_us.prices", CPI_MINI)
    canvas = make((EQUITY_MINI, VOL, CPI_MINI))
    plan = TokenPlan.from_canvas(canvas, channels=2)
    assert plan.fields == ("markets", EQUITY_MINI, VOL, "country_us", "country_us.prices", CPI_MINI)
    assert GDP_MINI not in plan.fields  # a sibling with no data costs no tokens
    # tokens: one per position of each active field's footprint
    sizes = {f.path: f.h * f.w for f in projection.fields}
    assert plan.num_tokens == sum(sizes[p] for p in plan.fields)
    assert np.bincount(plan.token_field).tolist() == [sizes[p] for p in plan.fields]
    owner = np.repeat(np.arange(len(canvas.slots)), canvas.slots)  # canvas field of each value slot
    expected = [plan.fields.index(canvas.paths[f]) if canvas.paths[f] in plan.fields else -1 for f in owner]
    assert plan.slot_model_field.tolist() == expected and expected.count(-1) == 1  # gdp's slot
    assert active_paths(projection.paths, np.zeros(len(projection.paths), bool)) == ()


def test_spatial_mask_is_layout_connectivity_plus_hub_mesh(mini):
    projection, make = mini
    plan = TokenPlan.from_canvas(make((EQUITY_MINI, VOL, CPI_MINI)), channels=2)
    adjacency = Connectivity.from_projection(projection).adjacency
    hub = np.array([f.kind == "coarse" for f in projection.fields])
    field = plan.canvas_field[plan.token_field]
    expected = adjacency[np.ix_(field, field)] | (hub[field][:, None] & hub[field][None, :])
    assert np.array_equal(plan.spatial_mask, expected)

    def tokens(path):
        return np.flatnonzero(np.array(plan.fields)[plan.token_field] == path)

    def attends(a, b):
        return plan.spatial_mask[np.ix_(tokens(a), tokens(b))]

    index = projection.index_of
    assert not attends(EQUITY_MINI, CPI_MINI).any() and not attends(CPI_MINI, VOL).any()  # other subtree's leaves
    assert attends(CPI_MINI, "country_us.prices").all() and attends(VOL, "markets").all()  # leaf -> its hub
    assert attends(VOL, VOL).all()  # the positions of one field see each other
    assert not adjacency[index["markets"], index["country_us.prices"]]  # not neighbours in the tree ...
    assert attends("markets", "country_us.prices").all() and attends("country_us.prices", "markets").all()  # mesh


def test_vector_field_slots_spread_over_its_positions(mini):
    projection, make = mini
    canvas = make((EQUITY_MINI, VOL, CPI_MINI))
    plan = TokenPlan.from_canvas(canvas, channels=2)
    offsets = np.concatenate([[0], np.cumsum(canvas.slots)])
    vol, cpi = projection.paths.index(VOL), projection.paths.index(CPI_MINI)
    assert canvas.slots[vol] == VOL_SLOTS
    names = np.array(plan.fields)[plan.token_field]
    vol_tokens = np.flatnonzero(names == VOL)
    assert np.array_equal(plan.token_position[vol_tokens], canvas.layout.positions(VOL))
    rows = plan.token_slots[vol_tokens]
    written = rows[rows < plan.num_slots]
    assert sorted(written.tolist()) == list(range(offsets[vol], offsets[vol + 1]))  # every slot exactly once
    assert [int((r < plan.num_slots).sum()) for r in rows] == [2, 2, 2, 0]  # 6 slots over 4 positions
    cpi_rows = plan.token_slots[names == CPI_MINI]  # a scalar over 2 positions: broadcast to both
    assert cpi_rows[:, 0].tolist() == [offsets[cpi]] * 2 and (cpi_rows[:, 1] == plan.num_slots).all()
    with pytest.raises(ValueError, match="value_channels"):
        TokenPlan.from_canvas(canvas, channels=1)


# -- 3. looped backbone -----------------------------------------------------------------------------------------
def _isolating_mask(P: int) -> torch.Tensor:
    mask = torch.ones(P, P, dtype=torch.bool)
    mask[0] = False
    mask[0, 0] = True
    return mask


def test_looped_backbone_keeps_an_isolated_position_isolated_across_time():
    torch.manual_seed(0)
    backbone = LoopedBackbone(16, n_heads=2, n_layers=2, n_loops=2).eval()
    with torch.no_grad():  # make the per-loop parameters count
        backbone.loop_embedding.normal_()
        backbone.loop_gain.normal_(0.0, 0.5)
    B, L, P = 2, 4, 5
    x = torch.randn(B, L, P, 16)
    others = x.clone()
    others[:, :, 1:] += torch.randn(B, L, P - 1, 16)  # every other position changes, at every step
    own_past = x.clone()
    own_past[:, 0, 0] += torch.randn(B, 16)  # position 0 changes at the first step only
    mask, full = _isolating_mask(P), torch.ones(P, P, dtype=torch.bool)
    with torch.no_grad():
        base, moved = backbone(x, mask), backbone(others, mask)
        torch.testing.assert_close(moved[:, :, 0], base[:, :, 0], rtol=0, atol=1e-6)
        assert (moved[:, :, 1:] - base[:, :, 1:]).abs().amax() > 1e-2
        assert (backbone(own_past, mask)[:, -1, 0] - base[:, -1, 0]).abs().amax() > 1e-3  # time mixes position 0
        assert (backbone(others, full)[:, :, 0] - backbone(x, full)[:, :, 0]).abs().amax() > 1e-3


def test_looped_per_loop_parameters_start_at_zero_and_zero_branches_is_identity():
    torch.manual_seed(1)
    backbone = LoopedBackbone(16, n_heads=2, n_layers=2, n_loops=3)
    assert not backbone.loop_embedding.any() and not backbone.loop_gain.any()
    x, cond = torch.randn(2, 3, 4, 16), torch.randn(2, 16)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x, cond=cond), backbone(x))  # cond enters through a zero projection
        assert (backbone(x) - backbone.final_norm(x)).abs().amax() > 1e-2
        backbone.zero_branches(range(2))
        torch.testing.assert_close(backbone(x, _isolating_mask(4), cond), backbone.final_norm(x))


def test_a_deeper_backbone_grown_with_zero_branches_equals_the_shallower_one():
    torch.manual_seed(2)
    shallow = LoopedBackbone(16, n_heads=2, n_layers=2, n_loops=2).eval()
    deep = LoopedBackbone(16, n_heads=2, n_layers=3, n_loops=2).eval()
    with torch.no_grad():
        for i in range(2):
            deep.blocks[i].load_state_dict(shallow.blocks[i].state_dict())
        deep.final_norm.load_state_dict(shallow.final_norm.state_dict())
    deep.zero_branches([2])
    x = torch.randn(2, 3, 4, 16)
    with torch.no_grad():
        torch.testing.assert_close(deep(x, _isolating_mask(4)), shallow(x, _isolating_mask(4)))


# -- 4. the model -----------------------------------------------------------------------------------------------
def _last_visible_by_hand(inputs: np.ndarray, visible: np.ndarray, slot_field: np.ndarray) -> np.ndarray:
    B, L, S = inputs.shape
    out = np.zeros_like(inputs)
    for b in range(B):
        for s in range(S):
            last = None
            for t in range(L):
                if visible[b, t, slot_field[s]]:
                    last = inputs[b, t, s]
                out[b, t, s] = 0.0 if last is None else last
    return out


def test_untrained_model_predicts_exactly_the_carried_forward_value(synthetic):
    model = tiny_model(synthetic).eval()
    batches, batch = window_batch(synthetic)
    generator = torch.Generator().manual_seed(0)
    visible = hide_cells(batch["visible"], batches.step_offset, MaskingConfig(cell_rate=0.3), generator)
    inputs = batch["targets"] * visible[..., batches.slot_field]
    with torch.no_grad():
        pred = model(inputs, visible, batches.step_offset, batch["day_of_year"])
    carried, age = carry_forward(inputs, visible, model.slot_field)
    assert torch.equal(pred, carried)
    by_hand = _last_visible_by_hand(inputs.numpy(), visible.numpy(), batches.slot_field.numpy())
    np.testing.assert_array_equal(carried.numpy(), by_hand)
    assert (carried != 0).float().mean() > 0.5  # persistence is not trivially zero here
    last_seen = visible[:, -1]  # the age is 0 where a field shows itself, and counts steps since otherwise
    assert (age[:, -1][last_seen] == 0).all() and (age[:, -1][~last_seen] >= 1).all()


def test_an_untrained_head_skips_the_backbone_without_changing_the_prediction(synthetic):
    model = tiny_model(synthetic).eval()
    batches, batch = window_batch(synthetic)
    visible = batch["visible"]
    inputs = batch["targets"] * visible[..., batches.slot_field]
    passes = []
    model.backbone.register_forward_hook(lambda *_: passes.append(1))
    args = (inputs, visible, batches.step_offset, batch["day_of_year"])
    with torch.no_grad():
        skipped = model(*args)
    assert not passes                      # scoring persistence (an untrained model) costs no backbone pass
    computed = model(*args)                # with gradients (training) the backbone always runs ...
    assert len(passes) == 1
    assert torch.equal(skipped, computed.detach())  # ... and its zero-weighted output changes nothing
    with torch.no_grad():
        model.decoder.head.bias[0] = 1e-3  # any non-zero head weight: the backbone runs again
        model(*args)
    assert len(passes) == 2

def _with_trained_head(model):
    """The model with a random output head (an untrained one adds nothing, so its inputs could not matter)."""
    torch.manual_seed(1)
    with torch.no_grad():
        model.decoder.head.weight.normal_(0, 0.5)
    return model.eval()


def test_relative_inputs_bound_what_an_unseen_level_does_to_the_correction(synthetic):
    """Move one scalar field's whole window (values and everything visible) to levels far outside anything trained
    on: with relative inputs the encoder reads the same movements and a saturated level channel, so the correction
    is the same at +20 and at +200; a model reading levels still moves its correction between the two."""
    batches, batch = window_batch(synthetic)
    visible = batch["visible"]
    field = batches.canvas.paths.index("financial.equities.indices.sp500")
    slot = int(batches.canvas.offsets[field])

    def corrections(model, shift):
        inputs = batch["targets"] * visible[..., batches.slot_field]
        moved = inputs.clone()
        moved[..., slot] = torch.where(visible[..., field], inputs[..., slot] + shift, inputs[..., slot])
        carried, _ = carry_forward(moved, visible, model.slot_field)
        with torch.no_grad():
            return model(moved, visible, batches.step_offset, batch["day_of_year"]) - carried

    relative = _with_trained_head(tiny_model(synthetic, config=dataclasses.replace(TINY, relative_inputs=True)))
    levels = _with_trained_head(tiny_model(synthetic, config=dataclasses.replace(TINY, relative_inputs=False)))
    assert torch.allclose(corrections(relative, 20.0), corrections(relative, 200.0), atol=1e-4)
    assert not torch.allclose(corrections(relative, 0.0), corrections(relative, 20.0), atol=1e-3)  # levels still matter
    far, farther = corrections(levels, 20.0), corrections(levels, 200.0)
    assert (farther - far).abs().max() > 0.1


def test_a_manifest_from_before_relative_inputs_loads_as_a_level_model():
    assert ModelConfig().relative_inputs
    assert not ModelConfig.from_manifest({"d_model": 16}).relative_inputs
    assert ModelConfig.from_manifest({"d_model": 16, "relative_inputs": True}).relative_inputs


def test_gradients_reach_every_part_of_the_model(synthetic):
    model = tiny_model(synthetic)
    batches, batch = window_batch(synthetic)
    objective = Objective(model, batches, "masked", MaskingConfig())
    loss, _, scored = objective.loss(batch, torch.Generator().manual_seed(0))
    assert scored > 0
    loss.backward()
    # the zero head makes the first step train the head only (a persistence start)
    head = model.decoder.head
    assert head.weight.grad.abs().sum() > 0
    assert all(p.grad is None or not p.grad.any() for n, p in model.named_parameters() if not n.startswith("decoder"))
    with torch.no_grad():
        head.weight.normal_(0.0, 0.1)
    model.zero_grad()
    objective.loss(batch, torch.Generator().manual_seed(0))[0].backward()
    unused = ("timestep.", "backbone.cond_proj.")  # diffusion-only conditioning
    for name, p in model.named_parameters():
        if name.startswith(unused):
            assert p.grad is None, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reached {name}"
    for part in ("encoder.", "backbone.blocks.", "backbone.loop_embedding", "decoder.", "field_offset"):
        assert any(n.startswith(part) for n, _ in model.named_parameters()), part


# -- 5. masking and the masked loss -----------------------------------------------------------------------------
def test_hide_cells_only_hides():
    generator = torch.Generator().manual_seed(0)
    visible = torch.rand(64, 20, 30, generator=generator) < 0.7
    offsets = torch.arange(-15, 5)
    for config in (MaskingConfig(), MaskingConfig(cell_rate=0.5, field_rate=0.5, span_rate=1.0, future_rate=0.5)):
        hidden = hide_cells(visible, offsets, config, generator)
        assert hidden.dtype == torch.bool and not (hidden & ~visible).any()
        assert hidden.sum() < visible.sum()
    everything = torch.ones(64, 20, 30, dtype=torch.bool)
    future = hide_cells(everything, offsets, MaskingConfig(cell_rate=0, field_rate=0, span_rate=0, future_rate=1.0))
    assert not future[:, offsets > 0].any() and future[:, offsets <= 0].all()
    rate = hide_cells(everything, offsets, MaskingConfig(cell_rate=0.3, field_rate=0, span_rate=0, future_rate=0),
                      generator)
    assert abs(1 - rate.float().mean().item() - 0.3) < 0.02
    whole = hide_cells(everything, offsets, MaskingConfig(cell_rate=0, field_rate=1.0, span_rate=0, future_rate=0))
    assert not whole.any()
    same = [hide_cells(visible, offsets, MaskingConfig(), torch.Generator().manual_seed(5)) for _ in range(2)]
    assert torch.equal(*same)


def test_masked_loss_scores_only_hidden_cells_and_a_vector_counts_as_one_field():
    slot_field, slots = torch.tensor([0, 1, 1, 1, 1]), torch.tensor([1.0, 4.0])  # a scalar and a 4-slot vector
    scored = torch.zeros(1, 3, 2, dtype=torch.bool)
    scored[:, 2] = True  # only the last step is scored
    weight = torch.ones(1, 2)
    target = torch.randn(1, 3, 5)

    def loss(pred, w=weight, s=scored):
        return masked_loss(pred, target, s, w, slot_field, slots)[0].item()

    assert loss(target.clone()) == 0.0
    err_all, err_scalar, err_vector, err_seen = target.clone(), target.clone(), target.clone(), target.clone()
    err_all[:, 2] += 1.0
    err_scalar[:, 2, 0] += 1.0
    err_vector[:, 2, 1:] += 1.0
    err_seen[:, :2] += 100.0  # wild predictions of unscored cells
    assert loss(err_all) == pytest.approx(1.0)
    assert loss(err_scalar) == pytest.approx(0.5) and loss(err_vector) == pytest.approx(0.5)
    assert loss(err_seen) == 0.0
    assert loss(err_all + (err_seen - target)) == pytest.approx(1.0)
    assert loss(err_all, w=torch.tensor([[1.0, 0.0]])) == pytest.approx(1.0)  # weight 0: the vector is not scored
    # a window with nothing scored is 0 and does not dilute the mean
    two = torch.cat([scored, torch.zeros_like(scored)])
    mean, per_window = masked_loss(torch.cat([err_all, err_all]), torch.cat([target, target]), two,
                                   torch.ones(2, 2), slot_field, slots)
    assert mean.item() == pytest.approx(1.0) and per_window.tolist() == pytest.approx([1.0, 0.0])


def test_objective_never_scores_a_visible_cell(synthetic):
    model = tiny_model(synthetic)
    batches, batch = window_batch(synthetic)
    objective = Objective(model, batches, "masked", MaskingConfig())
    scored = objective.scored(batch, batch["visible"])
    assert scored.any() and not (scored & batch["visible"]).any() and not (scored & ~batch["present"]).any()


# -- 6. diffusion -----------------------------------------------------------------------------------------------
def test_period_noise_scale_is_one_for_fast_fields_and_falls_with_period():
    periods = torch.tensor([0.0, 1.0, 7.0, 365.25 / 12, 365.25 / 4, 365.25])
    scale = period_noise_scale(periods, 7.0)
    assert scale[:3].tolist() == [1.0, 1.0, 1.0]
    assert (scale[3:].diff() < 0).all() and scale[2] > scale[3] and scale[-1] > 0
    assert scale[4].item() == pytest.approx(0.28, abs=0.01)  # quarterly on a weekly canvas
    assert scale[3].item() == pytest.approx(1 / (1 + math.log(365.25 / 12 / 7)))


def test_cosine_schedule_falls_from_one_to_small():
    schedule = CosineSchedule()
    t = torch.linspace(0, 1, 101)
    ab = schedule.alpha_bar(t)
    assert ab[0].item() == pytest.approx(1.0, abs=1e-6) and ab[-1].item() == pytest.approx(1e-4)
    assert (ab[:-1].diff() < 0).all() and (ab >= 1e-4).all() and (ab <= 1).all()
    assert 0.4 < schedule.alpha_bar(torch.tensor(0.5)).item() < 0.6


def test_diffusion_noise_is_scaled_per_field_by_its_period(synthetic):
    _, projection, canvas = synthetic
    objective = Objective(tiny_model(synthetic), WindowBatches(canvas, CONTEXT, HORIZON), "diffusion", MaskingConfig())
    specs = {f.path: f for f in projection.fields}
    expected = [1.0 if specs[p].period_days <= 7 else 1 / (1 + math.log(specs[p].period_days / 7))
                for p in canvas.paths]
    assert objective.slot_scale.tolist() == pytest.approx(expected)
    assert min(expected) < 0.5  # the monthly CPI surprise on this weekly canvas


@pytest.fixture(scope="module")
def diffusion_run(synthetic):
    model = tiny_model(synthetic, seed=3)
    trainer = Trainer(model, synthetic[2], train_config(objective="diffusion", steps=60, lr=5e-3, warmup_steps=5,
                                                        batch_size=32))
    probe = trainer.split.train[::4]
    before = trainer.evaluate_loss(probe)
    history = trainer.fit()
    return trainer, history, before, trainer.evaluate_loss(probe)


def test_diffusion_training_loss_falls(diffusion_run):
    _, history, before, after = diffusion_run
    assert history.stopped == "reached 60 steps"
    assert after < 0.8 * before, (before, after)
    losses = [s["loss"] for s in history.steps]
    assert len(losses) == 60 and np.mean(losses[-10:]) < np.mean(losses[:10]), losses


def test_diffusion_predict_samples_the_wanted_cells_and_keeps_the_visible_ones(diffusion_run):
    trainer = diffusion_run[0]
    batches, objective = trainer.batches, trainer.objective
    assert objective.kind == "diffusion"
    batch = batches(trainer.split.val[:4])
    visible = hide_cells(batch["visible"], batches.step_offset, FUTURE_ONLY)
    wanted = batch["present"] & ~visible
    mean, draws = objective.predict(batch, visible, wanted, samples=6, steps=8,
                                    generator=torch.Generator().manual_seed(0))
    assert draws.shape == (6, *batch["targets"].shape)
    torch.testing.assert_close(mean, draws.mean(dim=0))
    on = wanted[..., batches.slot_field]
    spread = draws.std(dim=0)
    assert on.any() and (spread[on] > 0).all() and spread[on].mean() > 1e-2
    inputs = batch["targets"] * visible[..., batches.slot_field]
    assert torch.equal(draws[:, ~on], inputs[~on].expand(6, -1))


# -- 7. trainer options -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["easy_to_hard", "self_paced"])
def test_curriculum_window_orders_drive_training(synthetic, order, monkeypatch):
    made = []
    real_make_order = ordering.make_order

    def recording_make_order(*args, **kwargs):
        made.append(real_make_order(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(ordering, "make_order", recording_make_order)
    trainer = Trainer(tiny_model(synthetic), synthetic[2], train_config(window_order=order, steps=9,
                                                                        windows_per_epoch=48))
    history = trainer.fit()
    assert isinstance(history, TrainHistory) and history.stopped == "reached 9 steps"
    assert len(history.epochs) == 3 and all(math.isfinite(e["train_loss"]) for e in history.epochs)
    (strategy,) = made
    n = trainer.split.train.size
    if order == "easy_to_hard":
        assert isinstance(strategy, ordering.EasyToHardOrder) and strategy.n == n
        assert strategy.pool(0).size == math.ceil(0.3 * n)  # the first epoch sees the easiest 30% only
        assert np.ptp(strategy.difficulty) > 0
    else:
        assert isinstance(strategy, ordering.SelfPacedOrder)
        measured = ~np.isnan(strategy.losses)
        assert measured.sum() >= 48 and (strategy.losses[measured] >= 0).all()  # per-window losses fed back


def test_start_decay_keeps_a_fine_tuned_model_near_where_it_started(synthetic):
    """The pull toward the starting weights shrinks the drift from them (what a join's average then
    interferes with), and at zero it is exactly the plain optimiser."""
    def drift(**kw):
        model = tiny_model(synthetic)
        start = {k: v.detach().clone() for k, v in model.state_dict().items()}
        # no validation split: the weights as trained, not the best validated ones (which may be the start)
        Trainer(model, synthetic[2], train_config(steps=12, patience=100, val_fraction=0.0, **kw)).fit()
        return sum(float((v - start[k]).pow(2).sum()) for k, v in model.state_dict().items()
                   if v.is_floating_point()) ** 0.5, model

    plain, plain_model = drift()
    off, off_model = drift(start_decay=0.0)
    pulled, _ = drift(start_decay=200.0)
    assert off == pytest.approx(plain, rel=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(plain_model.state_dict().values(), off_model.state_dict().values(),
                                                 strict=True))
    assert 0 < pulled < 0.5 * plain
    with pytest.raises(ValueError, match="start_decay"):
        train_config(start_decay=-1.0)


def test_early_stopping_stops_when_validation_stalls(synthetic):
    config = train_config(steps=None, epochs=50, lr=1e-9, warmup_steps=0, patience=1, min_epochs=1,
                          windows_per_epoch=32)
    history = Trainer(tiny_model(synthetic), synthetic[2], config).fit()
    assert history.stopped.startswith("early stop"), history.stopped
    # the starting weights are validated first (step 0); epoch 0 does not improve on them, patience 1 is spent
    assert [v["step"] for v in history.validations] == [0, 2]
    assert len(history.epochs) == 1 and history.best_step == 0 and history.timing["steps"] == 2


def test_training_that_only_hurts_validation_hands_back_the_starting_weights(synthetic):
    """Every step is followed by a wrecked output head, so no trained state validates better than the start: fit must
    return the model exactly as it started (for a fresh model: its base forecast)."""
    model = tiny_model(synthetic)
    start = copy.deepcopy(model.state_dict())

    def wreck(step: int, metrics: dict) -> None:
        with torch.no_grad():
            model.decoder.head.bias.add_(3.0)

    config = train_config(steps=8, eval_steps=2)
    history = Trainer(model, synthetic[2], config, loggers=[CallbackLogger(on_step=wreck)]).fit()
    assert [v["step"] for v in history.validations] == [0, 2, 4, 6, 8]
    assert history.best_step == 0 and history.best_epoch == -1
    assert all(v["val_loss"] > history.best_val_loss for v in history.validations[1:])
    for key, value in start.items():
        assert torch.equal(model.state_dict()[key], value), key


def test_forecast_selection_scores_only_what_was_not_yet_published(synthetic):
    """``select_on="forecast"`` validates on the forecasting task (the cells hidden by publication, no masking draw):
    the same number as the merge measures' forecast loss, and not the masked objective's."""
    from gwm_model.curriculum.validation import window_loss

    model = tiny_model(synthetic)
    forecast = Trainer(model, synthetic[2], train_config(select_on="forecast"))
    masked = Trainer(model, synthetic[2], train_config(select_on="masked"))
    anchors = forecast.split.val
    assert forecast.evaluate_loss(anchors) == pytest.approx(
        window_loss(model, synthetic[2], anchors, forecast.config, extra_hiding=False), rel=1e-5)
    assert masked.evaluate_loss(anchors) == pytest.approx(window_loss(model, synthetic[2], anchors, masked.config),
                                                          rel=1e-5)
    assert forecast.evaluate_loss(anchors) != pytest.approx(masked.evaluate_loss(anchors), rel=1e-3)


def test_best_weights_are_restored(synthetic):
    """After epoch 1 is evaluated, a logger wrecks the output head, so later epochs validate far worse; fit must
    hand back the weights of the best epoch, not the last."""
    model = tiny_model(synthetic)
    snapshots: dict[int, dict[str, torch.Tensor]] = {-1: copy.deepcopy(model.state_dict())}  # -1: the start

    def on_epoch(epoch: int, metrics: dict) -> None:
        snapshots[epoch] = copy.deepcopy(model.state_dict())
        if epoch == 1:
            with torch.no_grad():
                model.decoder.head.bias.add_(5.0)

    config = train_config(steps=None, epochs=4, lr=1e-3, windows_per_epoch=32, min_delta=0.0)
    trainer = Trainer(model, synthetic[2], config, loggers=[CallbackLogger(on_epoch=on_epoch)])
    history = trainer.fit()
    assert len(history.epochs) == 4 and history.best_epoch in (-1, 0, 1)
    assert history.val_loss[-1] > 2 * history.best_val_loss
    restored = model.state_dict()
    for key, value in snapshots[history.best_epoch].items():
        assert torch.equal(restored[key], value), key
    assert trainer.evaluate_loss(trainer.split.val) == pytest.approx(history.best_val_loss, rel=1e-6)


def test_lr_factor_warms_up_then_decays():
    cosine = TrainConfig(warmup_steps=10, decay="cosine", min_lr_ratio=0.1)
    assert [lr_factor(s, 110, cosine) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert lr_factor(10, 110, cosine) == pytest.approx(1.0)
    assert lr_factor(60, 110, cosine) == pytest.approx(0.55)
    assert lr_factor(110, 110, cosine) == pytest.approx(0.1) and lr_factor(500, 110, cosine) == pytest.approx(0.1)
    decays = [lr_factor(s, 110, cosine) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(decays, decays[1:], strict=False))
    linear = TrainConfig(warmup_steps=10, decay="linear", min_lr_ratio=0.1)
    assert lr_factor(35, 110, linear) == pytest.approx(0.1 + 0.9 * 0.75)
    constant = TrainConfig(warmup_steps=0, decay="constant")
    assert {lr_factor(s, 100, constant) for s in (0, 50, 99)} == {1.0}
    assert lr_factor(20, 5, cosine) == 1.0  # no room to decay after warm-up


@pytest.mark.parametrize("field, value", [
    ("objective", "contrastive"), ("window_order", "hardest_first"), ("decay", "step"), ("context", 0),
    ("horizon", -1), ("batch_size", 0), ("steps", -1), ("lr", 0.0), ("val_fraction", 1.0), ("precision", "fp8"),
])
def test_train_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"invalid TrainConfig: .*{field}"):
        TrainConfig(**{field: value})


def test_train_config_from_dict_names_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown train config key\(s\) \['learning_rate'\]"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    config = TrainConfig.from_dict({**TrainConfig(lr=0.01).to_dict(), "masking": {"cell_rate": 0.5}})
    assert config.lr == 0.01 and config.masking == MaskingConfig(cell_rate=0.5)


def test_train_config_rejects_eval_every_zero():
    with pytest.raises(ValueError, match="eval_every"):
        TrainConfig(eval_every=0)
    with pytest.raises(ValueError, match="eval_steps"):
        TrainConfig(eval_steps=0)
    with pytest.raises(ValueError, match="select_on"):
        TrainConfig(select_on="test")


def test_split_keeps_validation_and_test_targets_apart_from_training(synthetic):
    canvas = synthetic[2]
    split = split_anchors(canvas, CONTEXT, HORIZON, val_fraction=0.2)
    starts = canvas.axis.starts
    train_end = np.datetime64(canvas.stats.train_end, "D")
    assert starts[split.train_end_step] <= train_end < starts[split.train_end_step + 1]

    def steps(anchors):
        return {int(a) + o for a in anchors for o in range(-(CONTEXT - 1), HORIZON + 1)}

    assert split.train.size and split.val.size and split.test.size
    assert not steps(split.train) & steps(split.val)
    assert max(steps(split.train) | steps(split.val)) <= split.train_end_step  # both end by train_end
    assert split.test.min() > split.train_end_step and split.test.max() + HORIZON < canvas.num_steps
    assert split.val.size == round(0.2 * (split.val.max() - split.train.min() + 1))  # 20% of the windows before
    earlier = split_anchors(canvas, CONTEXT, HORIZON, 0.2, train_end=str(starts[200]))
    assert earlier.train_end_step == 200 and earlier.test.min() == 201


# -- 8. loggers -------------------------------------------------------------------------------------------------
def test_jsonl_and_tensorboard_loggers_record_a_run(synthetic, tmp_path):
    config = train_config(steps=6, windows_per_epoch=32, loggers=("jsonl", "tensorboard"))
    history = Trainer(tiny_model(synthetic), synthetic[2], config, log_dir=tmp_path).fit()
    metrics = tmp_path / "metrics.jsonl"
    steps = read_jsonl(metrics, "step")
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    assert all({"loss", "lr", "grad_norm"} <= set(r) for r in steps)
    assert [r["loss"] for r in steps] == pytest.approx([s["loss"] for s in history.steps])
    epochs = read_jsonl(metrics, "epoch")
    assert [r["epoch"] for r in epochs] == [0, 1, 2]
    assert [r["val_loss"] for r in epochs] == pytest.approx(history.val_loss)
    (start,) = read_jsonl(metrics, "start")
    (finish,) = read_jsonl(metrics, "finish")
    assert start["total_steps"] == 6 and finish["summary"]["stopped"] == "reached 6 steps"
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(events[0]))
    accumulator.Reload()
    loss = accumulator.Scalars("train/loss")
    assert [e.step for e in loss] == [1, 2, 3, 4, 5, 6]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in steps], rel=1e-6)
    assert len(accumulator.Scalars("val/loss")) == 3


# -- 9. checkpoints ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def masked_run(synthetic):
    model = tiny_model(synthetic, seed=4)
    trainer = Trainer(model, synthetic[2], train_config(steps=12, val_fraction=0.0))  # the weights as trained
    trainer.fit()
    assert model.decoder.head.weight.abs().sum() > 0  # trained beyond persistence
    return model.eval(), trainer


def save(model, canvas, projection, directory):
    specs = {f.path: f for f in projection.fields}
    return save_checkpoint(directory, model, canvas, train_config().to_dict(),
                           {p: specs[p].period_days for p in model.plan.fields})


def predictions(model, synthetic):
    batches, batch = window_batch(synthetic)
    visible = hide_cells(batch["visible"], batches.step_offset, FUTURE_ONLY)
    with torch.no_grad():
        return model(batch["targets"] * visible[..., batches.slot_field], visible, batches.step_offset,
                     batch["day_of_year"])


def assert_same_model(loaded, model, synthetic) -> None:
    """Bit-identical weights and buffers; predictions equal up to float summation order (on several threads a
    reduction may split differently for tensors at other addresses: ~1e-7)."""
    state, again = model.state_dict(), loaded.state_dict()
    assert state.keys() == again.keys()
    assert all(torch.equal(state[k], again[k]) for k in state)
    for name, buffer in model.named_buffers():
        assert torch.equal(buffer, loaded.get_buffer(name)), name
    torch.testing.assert_close(predictions(loaded, synthetic), predictions(model, synthetic), rtol=1e-6, atol=1e-6)


def test_load_model_without_manifest_names_the_path(tmp_path):
    empty = tmp_path / "not_a_checkpoint"
    empty.mkdir()
    with pytest.raises(CheckpointError, match=re.escape(str(empty / MANIFEST_FILE))):
        load_model(empty)


def test_checkpoint_round_trip_and_corruption(masked_run, synthetic, tmp_path):
    model = masked_run[0]
    manifest_path = save(model, synthetic[2], synthetic[1], tmp_path)
    manifest = json.loads(manifest_path.read_text())
    assert manifest["weights_sha256"] == file_sha256(tmp_path / WEIGHTS_FILE)
    loaded, read = load_model(tmp_path)
    assert not loaded.training and loaded.fields == model.fields and read["plan"]["fields"] == list(model.fields)
    assert_same_model(loaded, model, synthetic)
    assert not torch.equal(predictions(loaded, synthetic), predictions(tiny_model(synthetic, seed=4), synthetic))

    weights = tmp_path / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # inside the last tensor's bytes
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"hash") as error:
        load_model(tmp_path)
    assert str(weights) in str(error.value)
    weights.unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_model(tmp_path)


def test_checkpoint_missing_a_tensor_is_rejected(masked_run, synthetic, tmp_path):
    from safetensors.torch import load_file, save_file

    manifest_path = save(masked_run[0], synthetic[2], synthetic[1], tmp_path)
    weights = tmp_path / WEIGHTS_FILE
    state = load_file(str(weights))
    del state["field_offset"]
    save_file(state, str(weights))
    manifest = json.loads(manifest_path.read_text())
    manifest["weights_sha256"] = file_sha256(weights)  # a consistent checkpoint that lacks a tensor
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"does not fit its manifest.*field_offset"):
        load_model(tmp_path)


def test_checkpoint_whose_manifest_names_another_depth_raises_checkpoint_error(masked_run, synthetic, tmp_path):
    manifest_path = save(masked_run[0], synthetic[2], synthetic[1], tmp_path)
    manifest = json.loads(manifest_path.read_text())
    manifest["model"]["n_layers"] = 2  # the weights hold one block (and a (2, 1) loop_gain)
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="does not fit"):
        load_model(tmp_path)


# -- 10. a frozen CogVideoX transformer inside the world model ----------------------------------------------------
TINY_COGVIDEOX = dict(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4, time_embed_dim=8,
                      text_embed_dim=8, num_layers=2, sample_width=4, sample_height=4, sample_frames=1, patch_size=2,
                      max_text_seq_length=4)


def test_cogvideox_backbone_trains_adapters_only_and_checkpoints_without_frozen_weights(synthetic, tmp_path):
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    pretrained = tmp_path / "tiny_cogvideox"
    diffusers.CogVideoXTransformer3DModel(**TINY_COGVIDEOX).save_pretrained(str(pretrained))
    config = ModelConfig(backbone="cogvideox", pretrained=str(pretrained), d_model=16, n_loops=2)
    model = tiny_model(synthetic, seed=5, config=config)
    frozen = {k: v.clone() for k, v in model.backbone.transformer.state_dict().items()}
    adapters = model.backbone.trainable_state_dict()
    assert 0.0 < model.trainable_fraction() < 1.0

    # no weight decay: only gradients move weights; no validation split: the weights as trained are kept
    Trainer(model, synthetic[2], train_config(steps=5, val_fraction=0.0)).fit()
    for key, value in model.backbone.transformer.state_dict().items():
        assert torch.equal(value, frozen[key]), f"frozen tensor {key} changed"
    moved = {k for k, v in model.backbone.trainable_state_dict().items() if not torch.equal(v, adapters[k])}
    assert {"proj_in.0.weight", "proj_out.1.weight", "loop_gate", "temb_base", "cond_tokens"} <= moved, moved

    model.eval()
    save(model, synthetic[2], synthetic[1], tmp_path / "checkpoint")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "checkpoint" / WEIGHTS_FILE), framework="pt") as f:
        keys = set(f.keys())
    assert not any(k.startswith(FROZEN_PREFIX) for k in keys)
    assert {"backbone.proj_in.0.weight", "backbone.loop_gate", "field_text"} <= keys
    loaded, manifest = load_model(tmp_path / "checkpoint")
    assert manifest["backbone"]["model_id_or_path"] == str(pretrained)
    assert_same_model(loaded, model, synthetic)
    assert loaded.trainable_fraction() == pytest.approx(model.trainable_fraction())

