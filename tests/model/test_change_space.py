"""Change space: the correction is scaled, and its error measured, per field by the size of the field's own
one-step changes on the training period; a random walk gets a small scale, white noise a large one, and the
scale travels with the checkpoint so inference predicts exactly what training measured."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from gwm_model.canvas import build_canvas, make_time_axis
from gwm_model.canvas.normalise import training_cells
from gwm_model.nn.build import build_world_model
from gwm_model.nn.model import ModelConfig, carry_forward
from gwm_model.synthetic import EQUITY, PATHS, TWO_YEAR, VIX, synthetic_world
from gwm_model.training.batches import WindowBatches
from gwm_model.training.change_scale import MIN_SCALE, change_scales, slot_scales
from gwm_model.training.config import TrainConfig
from gwm_model.training.objectives import MaskingConfig
from gwm_model.training.steps import Objective

TINY = ModelConfig(d_model=16, n_heads=2, n_layers=1, n_loops=1)


def fake_embed(texts: list[str]) -> np.ndarray:
    out = np.stack([np.random.default_rng(abs(hash(t)) % 2**32).normal(size=384) for t in texts])
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def canvas(world):
    sw = synthetic_world(seed=0)
    return build_canvas(sw.observations, world.project(PATHS), make_time_axis(sw.start, sw.end, "weekly"),
                        sw.train_end), world.project(PATHS)


def test_scale_is_the_rms_of_training_changes_small_for_a_random_walk_large_for_noise(canvas):
    canvas, _ = canvas
    scales = change_scales(canvas)
    f = canvas.field_index(TWO_YEAR)
    days = np.asarray(canvas.axis.starts, dtype="datetime64[D]")[:, None]
    train = training_cells(canvas.presence, days, canvas.available_us, canvas.stats.train_end)[:, f]
    by_hand = np.sqrt(np.mean(np.diff(canvas.values[train, canvas.offsets[f]].astype(np.float64)) ** 2))
    assert scales[TWO_YEAR] == pytest.approx(by_hand, rel=1e-6)
    assert scales[TWO_YEAR] < 0.3          # a random walk moves little per step relative to its level's spread
    assert scales[EQUITY] > 3 * scales[TWO_YEAR]  # returns (macro-driven plus noise) jump far more per step
    presence = canvas.presence.copy()
    v = canvas.field_index(VIX)
    presence[np.flatnonzero(presence[:, v])[5:], v] = False     # five observations: four changes
    assert change_scales(dataclasses.replace(canvas, presence=presence))[VIX] == 1.0  # too few: level space
    assert min(scales.values()) >= MIN_SCALE


def test_level_space_is_all_ones_and_recorded_scales_win_over_refitting(canvas):
    canvas, _ = canvas
    assert (slot_scales(canvas, "level") == 1).all()
    recorded = {TWO_YEAR: 0.5}
    slots = slot_scales(canvas, "change", recorded)
    assert slots[canvas.offsets[canvas.field_index(TWO_YEAR)]] == pytest.approx(0.5)
    assert slots[canvas.offsets[canvas.field_index(EQUITY)]] == pytest.approx(change_scales(canvas)[EQUITY])
    with pytest.raises(ValueError, match="target_space"):
        slot_scales(canvas, "returns")
    with pytest.raises(ValueError, match="target_space"):
        TrainConfig(target_space="returns")


def test_change_space_scales_the_correction_and_divides_the_error_per_field(canvas):
    canvas, projection = canvas
    torch.manual_seed(0)
    model = build_world_model(canvas, projection, TINY, embeddings=fake_embed)
    batches = WindowBatches(canvas, 12, 2)
    batch = batches(np.arange(20, 36))
    change = Objective(model, batches, "masked", MaskingConfig(), "change")
    scale = change.slot_change
    # untrained, the model is persistence: the change-space loss is persistence's error in change units
    loss, _, n = change.loss(batch, extra_hiding=False)
    carried, _ = carry_forward(batch["targets"] * batch["visible"][..., batches.slot_field], batch["visible"],
                               batches.slot_field)
    scored = change.scored(batch, batch["visible"]).float() * batch["loss_weight"][:, None, :]
    by_hand = (((carried - batch["targets"]) / scale) ** 2 * scored).sum() / scored.sum()
    assert n > 0 and float(loss.detach()) == pytest.approx(float(by_hand), rel=1e-4)
    # trained or not, the correction is multiplied per slot by the field's scale
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.normal_(0, 0.5)
    args = (batch["targets"] * batch["visible"][..., batches.slot_field], batch["visible"], batches.step_offset,
            batch["day_of_year"])
    plain = model(*args)
    scaled = model(*args, correction_scale=scale)
    assert not torch.allclose(plain, carried)
    assert torch.allclose(scaled - carried, (plain - carried) * scale, atol=1e-5)
