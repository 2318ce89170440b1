"""The model's own AR base forecast: the baselines' AR with the same fit, point in time to the microsecond, stored
in the checkpoint and applied by ``WorldModel`` exactly as in training."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from gwm_model.evaluation import ar_forecast, fit_ar, step_offsets
from gwm_model.inference import WorldModel
from gwm_model.training.autoregression import BaseForecast
from gwm_model.training.batches import WindowBatches, base_fit_end
from gwm_model.training.run import fit_model, save_fitted
from tests.model.test_baselines import PATHS, _ar1, _canvas, _months, _published, _rows
from tests.model.test_learning import MODEL, config, fake_embed

CONTEXT, HORIZON = 6, 3


def _frame(shift_after: np.datetime64 | None = None) -> pl.DataFrame:
    """A monthly AR(1) (phi 0.6) and a random walk, 240 months, each month published on the 15th of the next; with
    ``shift_after``, every value published after that instant is moved by +100 (what must never be read before)."""
    months, rng = _months("1995-01", 240), np.random.default_rng(3)
    published = _published(months, 1, 15)
    values = [_ar1(rng, 240, 0.6), np.cumsum(rng.normal(size=240))]
    if shift_after is not None:
        values = [np.where(published > shift_after, v + 100.0, v) for v in values]
    return pl.concat([_rows(PATHS[0], months, published, values[0]), _rows(PATHS[1], months, published, values[1])])


def _values(base: BaseForecast, canvas, anchors, cutoff_us, offsets, late: bool = False) -> np.ndarray:
    """``(n, L, F)``: the base's values at every canvas slot (NaN for the fields it has none of)."""
    fields, values = base.forecast_compact(canvas, anchors, cutoff_us, offsets, late=late)
    out = np.full((*values.shape[:2], len(canvas.slots)), np.nan, dtype=np.float32)
    out[..., fields] = values
    return out


@pytest.fixture(scope="module")
def monthly(world):
    return _canvas(world, _frame(), _months("1995-01", 240), "2009-12-31", PATHS[:2])


def test_the_base_is_the_baselines_ar_with_the_same_fit(monthly):
    base = BaseForecast.fit(monthly, 150, "ar", order=3)
    assert set(base.fits) == set(PATHS[:2]) and base.fits[PATHS[0]].coef[0] == pytest.approx(0.6, abs=0.15)
    batches = WindowBatches(monthly, CONTEXT, HORIZON, base=base)
    anchors = np.arange(180, 230)
    got = batches(anchors)["base"].numpy()[..., monthly.offsets[:2]]
    expected = ar_forecast(monthly, anchors, CONTEXT, HORIZON, 150, fits=fit_ar(monthly, 150, 3))
    ahead = step_offsets(CONTEXT, HORIZON) >= 0
    np.testing.assert_allclose(got[:, ahead], expected[:, ahead], rtol=1e-5, atol=1e-6)
    assert np.isnan(got[:, ~ahead]).all()  # before the anchor the model starts from the window's own values
    assert WindowBatches(monthly, CONTEXT, HORIZON, base=BaseForecast.fit(monthly, 150, "persistence"))(
        anchors).get("base") is None
    # a held-out field (imputation) gets no base from its own history: it is reconstructed from the others
    keep = torch.tensor([False, True])
    held = batches(anchors, input_fields=keep)["base"].numpy()[..., monthly.offsets[:2]]
    assert np.isnan(held[..., 0]).all()
    np.testing.assert_array_equal(held[..., 1], got[..., 1])


def test_the_base_reads_only_what_was_published_by_the_cutoff(world, monthly):
    """A cutoff inside a step: the release published five days after it changes nothing; once published it does."""
    cutoff = np.datetime64("2012-06-10T00:00", "us")  # May 2012 is published on 2012-06-15
    shifted = _canvas(world, _frame(shift_after=cutoff), _months("1995-01", 240), "2009-12-31", PATHS[:2])
    base = BaseForecast.fit(monthly, 150, "ar")
    anchor = np.array([int(np.searchsorted(monthly.axis.starts, np.datetime64("2012-06-01"), side="right") - 1)])
    offsets = step_offsets(CONTEXT, HORIZON)
    at = np.array([cutoff.astype(np.int64)])
    np.testing.assert_array_equal(_values(base, monthly, anchor, at, offsets),
                                  _values(base, shifted, anchor, at, offsets))
    later = at + np.int64(10 * 86_400_000_000)
    assert not np.allclose(_values(base, monthly, anchor, later, offsets)[:, offsets >= 0, :2],
                           _values(base, shifted, anchor, later, offsets)[:, offsets >= 0, :2])


def test_late_releases_get_the_ar_nowcast_only_when_asked_and_only_from_what_was_published(world):
    """Released two months late, a month's value is still unpublished one step before the anchor. ``late=True``
    gives it the baselines' AR nowcast (what the gate of late releases starts from); the rows from the anchor on are
    unchanged, and a release published after the cutoff changes nothing."""
    months, rng = _months("1995-01", 240), np.random.default_rng(5)
    published = _published(months, 2, 15)
    values = _ar1(rng, 240, 0.6)
    canvas = _canvas(world, _rows(PATHS[0], months, published, values), months, "2009-12-31", PATHS[:1])
    base = BaseForecast.fit(canvas, 150, "ar", order=3)
    anchors = np.arange(180, 230)
    cutoff = canvas.axis.cutoffs_us[anchors] - 1
    offsets = step_offsets(CONTEXT, HORIZON)
    plain, late = _values(base, canvas, anchors, cutoff, offsets), _values(base, canvas, anchors, cutoff, offsets,
                                                                           late=True)
    ahead = offsets >= 0
    np.testing.assert_array_equal(plain[:, ahead], late[:, ahead])
    assert np.isnan(plain[:, ~ahead]).all()
    unpublished = offsets == -1  # month t-1 is published mid-month t+1
    expected = ar_forecast(canvas, anchors, CONTEXT, HORIZON, 150, fits=fit_ar(canvas, 150, 3))
    np.testing.assert_allclose(late[:, unpublished, 0], expected[:, unpublished, 0], rtol=1e-5, atol=1e-6)
    for anchor in (185, 200, 215):  # every value published after the anchor's cutoff moved by +100: nothing changes
        at = canvas.axis.cutoffs_us[[anchor]] - 1
        moved = np.where(published.astype(np.int64) > at[0], values + 100.0, values)
        shifted = _canvas(world, _rows(PATHS[0], months, published, moved), months, "2009-12-31", PATHS[:1])
        np.testing.assert_array_equal(_values(base, canvas, np.array([anchor]), at, offsets, late=True),
                                      _values(base, shifted, np.array([anchor]), at, offsets, late=True))


def test_the_base_round_trips_and_rejects_an_unknown_kind(monthly):
    base = BaseForecast.fit(monthly, 150, "ar")
    again = BaseForecast.from_dict(base.to_dict())
    anchors, cutoffs = np.arange(100, 110), monthly.axis.cutoffs_us[100:110] - 1
    offsets = step_offsets(CONTEXT, HORIZON)
    np.testing.assert_array_equal(_values(base, monthly, anchors, cutoffs, offsets),
                                  _values(again, monthly, anchors, cutoffs, offsets))
    assert BaseForecast.from_dict(None) is None
    with pytest.raises(ValueError, match="unknown base forecast 'arima'"):
        BaseForecast("arima", 3, 0, {})
    with pytest.raises(ValueError, match="base_forecast must be one of"):
        config(0, base_forecast="arima")


def test_a_checkpoint_carries_its_base_and_world_model_forecasts_from_it(world, monthly, tmp_path):
    """An untrained model is exactly its base: WorldModel, loading only the checkpoint, forecasts each field's AR
    from what was published by the as-of instant. Training and validation use the AR fitted before the validation
    windows; once validation has judged it, the checkpoint keeps the AR refitted on every training step."""
    projection = world.project(PATHS[:2])
    fitted = fit_model(monthly, projection, MODEL, config(0, context=CONTEXT, horizon=HORIZON), embeddings=fake_embed)
    split = fitted.trainer.split
    assert fitted.trainer.batches.base.fit_end_step == base_fit_end(split) < split.train_end_step  # trains, validates
    assert fitted.trainer.serving_batches.base.fit_end_step == split.train_end_step  # refitted for test and serving
    save_fitted(tmp_path, fitted, monthly, projection, fitted.trainer.config)
    assert WorldModel.load(tmp_path).base.fit_end_step == split.train_end_step
    model = WorldModel.load(tmp_path)
    as_of = np.datetime64("2012-06-20T00:00", "us")
    frame = model.observe(monthly, as_of=as_of).predict(list(PATHS[:2]), horizon=HORIZON)
    anchor = np.array([int(monthly.axis.step_of(np.array([as_of.astype("datetime64[D]")]))[0])])
    refit = BaseForecast.fit(monthly, split.train_end_step, "ar")
    base = _values(refit, monthly, anchor, np.array([as_of.astype(np.int64)]), step_offsets(CONTEXT, HORIZON))
    base = base[0, CONTEXT - 1:]
    for k, path in enumerate(PATHS[:2]):
        rows = frame[(frame.field_path == path) & (frame.kind == "predicted")]
        assert len(rows) >= HORIZON
        expected = base[rows["horizon"].to_numpy(), k] * monthly.stats.std[path] + monthly.stats.mean[path]
        np.testing.assert_allclose(rows["mean"].to_numpy(), expected, rtol=1e-4, atol=1e-4)
