"""Baselines (persistence, AR, DFM) forecast window cells point in time; scores, skill and DM tests are right."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest

from gwm_model.canvas import CanvasWindows, build_canvas, make_time_axis
from gwm_model.evaluation import (
    ar_forecast,
    baseline_forecasts,
    dfm_forecast,
    diebold_mariano,
    fit_ar,
    imputation_scores,
    mean_forecast,
    persistence_forecast,
    score_forecasts,
    step_offsets,
    window_cells,
)
from gwm_model.evaluation.gate import apply_gate, apply_stacked_gate, fit_gate, fit_group_gate, fit_stacked_gate
from gwm_model.evaluation.headline import group_headline
from gwm_model.evaluation.model_eval import MIN_TRAIN_CELLS, without_history
from gwm_model.evaluation.naive import CLIMATOLOGY, PERSISTENCE, choose_naive, naive_forecast, validation_fit_end
from tests.test_canvas_build import _rows as observation_rows  # noqa: E402

PATHS = ["financial.yield_curves.one_month", "financial.yield_curves.six_month", "financial.yield_curves.one_year",
         "financial.yield_curves.three_year", "financial.yield_curves.seven_year",
         "financial.yield_curves.twenty_year"]
NEWS = "events.news_embedding"
DAY = np.timedelta64(1, "D")


def _rows(path: str, ts: np.ndarray, available: np.ndarray, value: np.ndarray,
          vectors: np.ndarray | None = None) -> pl.DataFrame:
    return observation_rows(path, ts, available, value, source="test", vectors=vectors)


def _months(first: str, count: int) -> np.ndarray:
    return np.arange(np.datetime64(first, "M"), np.datetime64(first, "M") + count)


def _published(months: np.ndarray, months_late: int, day: int) -> np.ndarray:
    """Publication instants: day ``day`` of the month ``months_late`` after each dated month."""
    return ((months + months_late).astype("datetime64[D]") + (day - 1) * DAY).astype("datetime64[us]")


def _canvas(world, frame: pl.DataFrame, months: np.ndarray, train_end: str, paths=PATHS):
    axis = make_time_axis(str(months[0]) + "-01", str(months[-1]) + "-01", "monthly")
    return build_canvas(frame, world.project(list(paths)), axis, train_end=train_end)


def _ar1(rng: np.random.Generator, size: int, phi: float) -> np.ndarray:
    x = np.zeros(size)
    for t in range(1, size):
        x[t] = phi * x[t - 1] + rng.normal()
    return x


# persistence ---------------------------------------------------------------------------------------

def test_persistence_is_the_last_visible_value_and_never_a_later_release(world):
    months, rng = _months("2015-01", 36), np.random.default_rng(1)
    late, prompt = rng.normal(size=36), rng.normal(size=36)
    frame = pl.concat([
        _rows(PATHS[0], months, _published(months, 1, 20), late),  # released the month after
        _rows(PATHS[1], months, _published(months, 0, 10), prompt),  # released within its month
        _rows(NEWS, months, _published(months, 0, 28), np.zeros(36), vectors=rng.normal(size=(36, 4))),
    ])
    paths = [*PATHS[:2], NEWS]
    canvas = _canvas(world, frame, months, "2015-12-31", paths)
    anchors, context, horizon = np.arange(13, 30), 4, 3
    forecast = persistence_forecast(canvas, anchors, context, horizon)
    assert forecast.shape == (anchors.size, context + horizon, 3) and forecast.dtype == np.float32
    values = canvas.values[:, canvas.offsets[:2]]
    np.testing.assert_allclose(forecast[:, :, 0], np.repeat(values[anchors - 1, 0][:, None], 7, axis=1))
    np.testing.assert_allclose(forecast[:, :, 1], np.repeat(values[anchors, 1][:, None], 7, axis=1))
    assert np.isnan(forecast[:, :, 2]).all()  # a vector field has no baseline

    # a value released after the anchor's cutoff changes nothing at that anchor, but does one step later
    changed = frame.with_columns(pl.when((pl.col("field_path") == PATHS[0]) & (pl.col("ts") == pl.date(2016, 6, 1)))
                                 .then(pl.col("value") + 50.0).otherwise(pl.col("value")).alias("value"))
    other = persistence_forecast(_canvas(world, changed, months, "2015-12-31", paths), anchors, context, horizon)
    june = int(np.flatnonzero(anchors == 17)[0])
    np.testing.assert_array_equal(other[:june + 1], forecast[:june + 1])
    assert not np.allclose(other[june + 1], forecast[june + 1], equal_nan=True)

    # the inputs CanvasWindows shows: persistence equals the latest visible input of the window
    sample = CanvasWindows(canvas, context, horizon, anchors=[20])[0]
    seen = np.flatnonzero(sample["input_mask"][:, 0].numpy())
    assert forecast[anchors == 20, 0, 0] == pytest.approx(float(sample["inputs"][seen[-1], canvas.offsets[0]]))


# AR ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ar_canvas(world):
    """A mean-reverting AR(1) (phi 0.6), a random walk and a quarterly AR(1), 360 months, released a month late."""
    months, rng = _months("1990-01", 360), np.random.default_rng(7)
    quarters = months[::3]
    frame = pl.concat([
        _rows(PATHS[0], months, _published(months, 1, 15), _ar1(rng, 360, 0.6)),
        _rows(PATHS[1], months, _published(months, 1, 15), np.cumsum(rng.normal(size=360))),
        _rows(PATHS[2], quarters, _published(quarters, 4, 1), _ar1(rng, 120, 0.5)),
    ])
    return _canvas(world, frame, months, "2009-12-31", PATHS[:3])


def test_ar_recovers_the_coefficient_and_the_cadence(ar_canvas):
    fits = fit_ar(ar_canvas, train_end_step=239, order=1)
    assert fits[0].coef[0] == pytest.approx(0.6, abs=0.08)
    assert fits[0].spacing == 1 and fits[2].spacing == 3
    assert fits[0].n_obs == 239  # month 239 is released after the cutoff of step 239
    # the quarterly field: a cell k steps after its last visible release gets j = max(1, round(k / 3))
    anchor, context, horizon = 300, 3, 8
    forecast = ar_forecast(ar_canvas, [anchor], context, horizon, 239, order=1, fits=fits)[0, :, 2]
    fit, y = fits[2], ar_canvas.values[:, ar_canvas.offsets[2]].astype(np.float64)
    last = 297 - 3  # quarter dated step 297 is released 4 months later; 294 is the last visible
    ahead = [y[last]]
    for _ in range(5):
        ahead.append(fit.intercept + fit.coef[0] * ahead[-1])
    steps = anchor + step_offsets(context, horizon)
    expected = [ahead[0] if s <= last else ahead[max(1, round((s - last) / 3))] for s in steps]
    np.testing.assert_allclose(forecast, expected, rtol=1e-5)


def test_ar_beats_persistence_on_mean_reversion_but_not_on_a_random_walk(ar_canvas):
    anchors, context, horizon = np.arange(245, 352), 3, 6
    cells = window_cells(ar_canvas, anchors, context, horizon)
    predictions = baseline_forecasts(ar_canvas, anchors, context, horizon, 239, ("persistence", "ar"), ar_order=1)
    scores = score_forecasts(cells.truth, cells.hidden, predictions, ["ar1", "walk", "quarterly"],
                             step_offsets(context, horizon), horizon_buckets=lambda o: "all" if o >= 0 else None)
    ar = scores[scores.model == "ar"].set_index("group")
    assert ar.loc["ar1", "skill"] > 0.25 and ar.loc["ar1", "dm_stat"] < 0 and ar.loc["ar1", "dm_pvalue"] < 0.01
    assert ar.loc["walk", "skill"] < 0.05  # a random walk leaves nothing to forecast beyond the last value
    assert ar.loc["ar1", "n_cells"] == anchors.size * (horizon + 1)  # the anchor's month is a late release too


def test_ar_lags_skip_a_release_published_after_the_anchor(world):
    months, rng = _months("2000-01", 120), np.random.default_rng(0)
    published = _published(months, 0, 20)
    published[50] = published[60]  # month 50 is released ten months late, after the months that follow it
    canvas = _canvas(world, _rows(PATHS[0], months, published, _ar1(rng, 120, 0.7)), months, "2004-12-31",
                     PATHS[:1])
    fit = fit_ar(canvas, 59, order=3)[0]
    assert fit.n_obs == 59  # month 50 is not training data either
    y = canvas.values[:, 0].astype(np.float64)
    forecast = ar_forecast(canvas, [52], 3, 2, 59, order=3)[0, :, 0]
    np.testing.assert_allclose(forecast[:3], y[52], rtol=1e-6)  # at or before the last visible release
    np.testing.assert_allclose(forecast[3], fit.intercept + fit.coef @ y[[52, 51, 49]], rtol=1e-5)


def test_ar_falls_back_to_persistence_without_enough_training_data(ar_canvas):
    anchors = np.arange(30, 40)
    assert fit_ar(ar_canvas, train_end_step=12, order=3) == {}
    np.testing.assert_array_equal(ar_forecast(ar_canvas, anchors, 2, 2, 12, order=3),
                                  persistence_forecast(ar_canvas, anchors, 2, 2))
    means = mean_forecast(ar_canvas, anchors, 2, 2, 239)
    assert means.shape == (10, 4, 3) and np.allclose(means[:, :, 0], means[0, 0, 0])


# DFM -----------------------------------------------------------------------------------------------

def _factor_frame(seed: int = 3, count: int = 240) -> tuple[pl.DataFrame, np.ndarray]:
    """Five series loading on one AR(1) factor with gaps; the last is released three months late."""
    months, rng = _months("2000-01", count), np.random.default_rng(seed)
    factor = _ar1(rng, count, 0.85)
    frames = []
    for i, loading in enumerate([1.0, 0.8, 1.2, 0.9, 1.1]):
        value = loading * factor + rng.normal(0, 0.4, count)
        keep = rng.random(count) > (0.2 if i < 4 else 0.0)
        frames.append(_rows(PATHS[i], months[keep], _published(months[keep], 3 if i == 4 else 0, 25), value[keep]))
    return pl.concat(frames), months


@pytest.fixture(scope="module")
def factor_canvas(world):
    frame, months = _factor_frame()
    return _canvas(world, frame, months, "2012-12-31", PATHS[:5]), frame, months


def test_dfm_nowcasts_a_late_series_from_the_others(factor_canvas):
    canvas = factor_canvas[0]
    anchors, context, horizon = np.arange(160, 236), 6, 3
    cells = window_cells(canvas, anchors, context, horizon)
    predictions = {"persistence": persistence_forecast(canvas, anchors, context, horizon),
                   "dfm": dfm_forecast(canvas, anchors, context, horizon, train_end_step=155)}
    groups = ["visible", "visible", "visible", "visible", "late"]
    scores = score_forecasts(cells.truth, cells.hidden, predictions, groups, step_offsets(context, horizon),
                             horizon_buckets=lambda o: "nowcast" if o <= 0 else "forecast")
    dfm = scores[scores.model == "dfm"].set_index(["group", "horizon"])
    assert dfm.loc[("late", "nowcast"), "n_cells"] == anchors.size * 3  # three months not yet released
    assert dfm.loc[("late", "nowcast"), "skill"] > 0.3 and dfm.loc[("late", "nowcast"), "dm_pvalue"] < 0.01
    assert dfm.loc[("late", "forecast"), "skill"] > 0.2
    assert dfm.loc[("all", "forecast"), "skill"] > 0.0


def test_dfm_uses_only_what_was_published_by_the_anchor(factor_canvas, world):
    canvas, frame, months = factor_canvas
    anchor, context, horizon = 200, 6, 3
    cutoff = np.datetime64(str(months[anchor + 1]) + "-01", "us")
    noise = np.random.default_rng(5).normal(0, 3, frame.height)
    changed = frame.with_columns(pl.when(pl.col("available_at") >= cutoff).then(pl.col("value") + noise)
                                 .otherwise(pl.col("value")).alias("value"))
    other = _canvas(world, changed, months, "2012-12-31", PATHS[:5])
    assert other.stats == canvas.stats
    anchors = [anchor, anchor + 1]
    before = dfm_forecast(canvas, anchors, context, horizon, train_end_step=155)
    after = dfm_forecast(other, anchors, context, horizon, train_end_step=155)
    np.testing.assert_allclose(after[0], before[0], rtol=1e-5, atol=1e-6)
    assert np.isfinite(before[0][:, :5]).all()
    assert np.abs(after[1] - before[1]).max() > 1e-3  # the anchor after sees some of the changed values


def test_dfm_degrades_to_nan_with_a_warning_when_nothing_can_be_fitted(factor_canvas):
    canvas = factor_canvas[0]
    with pytest.warns(RuntimeWarning, match="no dynamic factor model"):
        out = dfm_forecast(canvas, [200], 6, 3, train_end_step=10, min_obs=24)
    assert out.shape == (1, 9, 5) and np.isnan(out).all()


# scores --------------------------------------------------------------------------------------------

def test_diebold_mariano_matches_a_hand_computation_and_handles_edge_cases():
    a, b = np.array([1.0, 2, 3, 4, 5]), np.full(5, 2.0)
    # d = a - b = -1..3: mean 1, gamma0 = 2, HLN factor (5 + 1 - 2) / 5 -> stat sqrt(2), t with 4 df
    stat, p = diebold_mariano(a, b)
    assert stat == pytest.approx(math.sqrt(2)) and p == pytest.approx(0.2301996410804989)
    # h = 2: gamma1 = 0.8 with Bartlett weight 1/2 -> variance 2.8; HLN factor 2.4 / 5
    assert diebold_mariano(a, b, horizon=2)[0] == pytest.approx(1 / math.sqrt(2.8 / 5) * math.sqrt(0.48))
    assert diebold_mariano(a, a) == (0.0, 1.0)
    assert diebold_mariano(a, a + 1.0) == (-math.inf, 0.0)
    assert all(math.isnan(v) for v in diebold_mariano([1.0, np.nan, 2.0], [0.5, 1.0, np.nan]))
    rng = np.random.default_rng(0)
    good = rng.chisquare(1, 200)
    stat, p = diebold_mariano(good, good + 1.0 + rng.normal(0, 0.5, 200), horizon=3)
    assert stat < 0 and p < 0.01
    stat, p = diebold_mariano(good + 1.0 + rng.normal(0, 0.5, 200), good)
    assert stat > 0 and p < 0.01


def test_score_forecasts_on_a_hand_made_case():
    truth = np.zeros((3, 2, 2))
    mask = np.ones_like(truth, dtype=bool)
    mask[2, 1, 1] = False  # not scored
    reference = np.ones_like(truth)
    model = np.full_like(truth, 0.5)
    model[0, 0, 0] = np.nan  # no forecast for one cell
    scores = score_forecasts(truth, mask, {"persistence": reference, "model": model}, ["a", "b"], [0, 1])
    assert set(scores.group) == {"a", "b", "all"} and len(scores) == 2 * 3 * 2
    ref = scores[scores.model == "persistence"]
    assert (ref.skill == 0).all() and (ref.dm_stat.fillna(0) == 0).all() and (ref.dm_pvalue.fillna(1) == 1).all()
    assert ref.dm_stat.isna().sum() == 1  # group b at horizon 1 has two scored anchors: too few for a test
    row = scores.set_index(["model", "group", "horizon"]).loc[("model", "a", 0)]
    assert row.n_cells == 2 and row.mse == 0.25 and row.mae == 0.5 and row.skill == pytest.approx(0.75)
    everything = scores.set_index(["model", "group", "horizon"]).loc[("model", "all", 1)]
    assert everything.n_cells == 5 and everything.n_anchors == 3 and everything.dm_stat == -math.inf
    bucketed = score_forecasts(truth, mask, {"persistence": reference, "model": model}, ["a", "b"], [0, 1],
                               horizon_buckets={0: "near", 1: "near"})
    near = bucketed.set_index(["model", "group"]).loc[("model", "all")]
    assert near.horizon == "near" and near.n_cells == 10 and near.mse == 0.25
    with pytest.raises(ValueError, match="reference 'persistence'"):
        score_forecasts(truth, mask, {"model": model}, ["a", "b"], [0, 1])


def test_imputation_scores_compare_with_the_training_mean():
    truth = np.array([[1.0, -1.0], [3.0, 1.0]])
    table = imputation_scores(truth, np.ones((2, 2), bool), truth + 0.5, np.array([2.0, 0.0]), ["x", "y"])
    rows = table.set_index("group")
    assert rows.loc["x", "mse"] == 0.25 and rows.loc["x", "mse_mean"] == 1.0 and rows.loc["x", "ratio"] == 0.25
    assert rows.loc["all", "n_cells"] == 4 and rows.loc["all", "skill"] == pytest.approx(0.75)


def test_baselines_reject_anchors_without_a_full_window(ar_canvas):
    with pytest.raises(ValueError, match="leave no full window"):
        persistence_forecast(ar_canvas, [1], context=3, horizon=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert persistence_forecast(ar_canvas, [], 3, 0).shape == (0, 3, 3)


# naive: the better of persistence and climatology, chosen on validation windows ----------------------

def test_naive_is_climatology_for_noise_and_persistence_for_a_random_walk(world):
    months, rng = _months("1990-01", 300), np.random.default_rng(11)
    frame = pl.concat([
        _rows(PATHS[0], months, _published(months, 0, 28), rng.normal(size=300)),  # white noise: a return
        _rows(PATHS[1], months, _published(months, 0, 28), np.cumsum(rng.normal(0.2, 1, size=300))),  # a level
        _rows(PATHS[2], months, _published(months, 0, 28), _ar1(rng, 300, 0.98)),  # persistent: near a walk
    ])
    canvas = _canvas(world, frame, months, "2009-12-31", PATHS[:4])
    validation = np.arange(200, 236)
    chosen = choose_naive(canvas, validation, 6, 3, train_end_step=239)
    assert chosen[PATHS[0]] == CLIMATOLOGY
    assert chosen[PATHS[1]] == PERSISTENCE and chosen[PATHS[2]] == PERSISTENCE
    assert chosen[PATHS[3]] == PERSISTENCE  # no data at all: the default, not a guess
    assert choose_naive(canvas, [], 6, 3, train_end_step=239) == {p: PERSISTENCE for p in PATHS[:4]}
    # the choice reads only the validation windows: noise that turns into a walk after them stays climatology
    walk = np.cumsum(rng.normal(size=60)) * 5
    later = frame.with_columns(pl.when((pl.col("field_path") == PATHS[0]) & (pl.col("ts") > pl.date(2009, 12, 31)))
                               .then(pl.col("value") + pl.Series(np.r_[np.zeros(240), walk, np.zeros(600)]))
                               .otherwise(pl.col("value")).alias("value"))
    assert choose_naive(_canvas(world, later, months, "2009-12-31", PATHS[:4]), validation, 6, 3,
                        train_end_step=239)[PATHS[0]] == CLIMATOLOGY
    # ... while windows over that later period pick persistence for it
    assert choose_naive(_canvas(world, later, months, "2009-12-31", PATHS[:4]), np.arange(250, 290), 6, 3,
                        train_end_step=239)[PATHS[0]] == PERSISTENCE


def test_the_climatology_judged_on_validation_never_contains_the_validation_values(world):
    """A series that sits near 0 for 20 months, then near 6 with wide noise: the mean of the training period
    (1.5 years of the level 6 in it) is close to what validation scores, so climatology would "win" against
    persistence only because it saw those values. Judged with the mean published before the validation windows
    (near 0), persistence is the honest choice."""
    months, rng = _months("1990-01", 110), np.random.default_rng(2)
    value = np.r_[rng.normal(0, 1, 20), rng.normal(6, 4, 90)]
    canvas = _canvas(world, _rows(PATHS[0], months, _published(months, 0, 28), value), months, "1996-08-31",
                     PATHS[:1])
    assert validation_fit_end(np.arange(20, 77), 79) == 20 and validation_fit_end(np.zeros(0), 79) == 79
    assert choose_naive(canvas, np.arange(20, 77), 6, 3, train_end_step=79)[PATHS[0]] == PERSISTENCE
    in_sample = mean_forecast(canvas, np.arange(20, 77), 6, 3, 79)
    honest = naive_forecast(canvas, np.arange(20, 77), 6, 3, 20, np.array([True]))
    cells = window_cells(canvas, np.arange(20, 77), 6, 3)
    ahead = cells.hidden[..., 0] & (step_offsets(6, 3) >= 1)[None, :]
    truth = cells.truth[..., 0][ahead]
    assert np.mean((in_sample[..., 0][ahead] - truth) ** 2) < np.mean((honest[..., 0][ahead] - truth) ** 2) / 2
    assert validation_fit_end(np.arange(80, 106), 79) == 79  # windows after train_end: its mean is out of sample


# the headline: the median over field groups ----------------------------------------------------------

def test_the_headline_is_the_median_over_groups_with_enough_cells_and_counts_harm():
    def row(model, group, cells, skill, p):
        return {"model": model, "group": group, "horizon": "all", "n_cells": cells, "n_common": cells,
                "skill": skill, "dm_pvalue": p}
    table = pd.DataFrame([
        row("model", "a.x", 500, 0.10, 0.01), row("model", "b.y", 300, -0.40, 0.001),  # significantly worse
        row("model", "c.z", 200, -0.02, 0.60), row("model", "d.w", 40, 0.90, 0.01),   # d.w: too few cells
        row("model", "all", 1040, 0.50, 0.0),  # pooled: never the headline
        row("ar", "a.x", 500, 0.05, 0.2), row("ar", "b.y", 300, -0.10, 0.3), row("ar", "c.z", 200, 0.01, 0.5)])
    head = group_headline(table)
    assert head["median_group_skill"] == pytest.approx(-0.02)
    assert head["groups_scored"] == 3 and head["groups_worse_than_naive"] == 1 and head["groups_beating_ar"] == 1
    assert head["groups_too_small"] == {"d.w": 40}
    empty = group_headline(table[table["group"] == "d.w"])
    assert empty["median_group_skill"] is None and empty["groups_scored"] == 0
    assert group_headline(table[table["model"] == "model"])["groups_beating_ar"] is None  # no AR: not 0


def test_a_field_with_a_handful_of_training_cells_is_floored_and_not_scored(world):
    months, rng = _months("2000-01", 120), np.random.default_rng(5)
    recent = months[months >= np.datetime64("2007-09")]  # 4 training months before the 2007-12 train_end
    frame = pl.concat([
        _rows(PATHS[0], months, _published(months, 0, 28), 30 + np.cumsum(rng.normal(0, 0.1, 120))),
        _rows(PATHS[1], recent, _published(recent, 0, 28), 13 + rng.normal(0, 0.2, recent.size)),
    ])
    canvas = _canvas(world, frame, months, "2007-12-31", PATHS[:2])
    assert canvas.stats.count[PATHS[1]] == 4
    assert canvas.stats.std[PATHS[1]] == pytest.approx(0.25 * canvas.stats.mean[PATHS[1]])  # not ~0.2
    assert canvas.stats.std[PATHS[0]] < 0.25 * canvas.stats.mean[PATHS[0]]  # a long history keeps its own
    outputs = np.ones(len(canvas.paths), dtype=bool)
    excluded = without_history(canvas, outputs, MIN_TRAIN_CELLS)
    assert list(excluded) == [PATHS[1]] and "4 training cells (fewer than 52)" in excluded[PATHS[1]]


# the do-no-harm gate ---------------------------------------------------------------------------------

def test_the_gate_keeps_a_useful_correction_and_drops_noise():
    rng = np.random.default_rng(2)
    shape = (60, 3, 3)
    naive, signal = rng.normal(size=shape), rng.normal(size=shape)
    truth = naive + signal
    model = np.stack([(naive + signal)[..., 0],  # the model knows the signal: keep all of its correction
                      (naive + rng.normal(size=shape))[..., 1],  # pure noise: drop it
                      (naive + 0.5 * signal)[..., 2]], axis=-1)  # half the signal: a weight near 1 (clipped)
    scored = np.ones(shape, dtype=bool)
    weight = fit_gate(model, naive, truth, scored)
    assert weight[0] == pytest.approx(1.0) and weight[1] < 0.1 and weight[2] == 1.0
    few = np.zeros(shape, dtype=bool)
    few[:5, 0, :] = True  # 5 cells per field: no evidence, no correction
    assert (fit_gate(model, naive, truth, few) == 0).all()
    gated = apply_gate(model, naive, np.array([1.0, 0.0, 0.5]))
    np.testing.assert_allclose(gated[..., 1], naive[..., 1])
    np.testing.assert_allclose(gated[..., 2], naive[..., 2] + 0.5 * (model[..., 2] - naive[..., 2]))
    missing = naive.copy()
    missing[0, 0, 1] = np.nan  # no naive value: the model's forecast stands
    assert apply_gate(model, missing, np.zeros(3))[0, 0, 1] == model[0, 0, 1]


def test_the_gate_closes_on_a_correction_that_paid_off_in_one_episode_only():
    rng = np.random.default_rng(3)
    shape = (90, 3, 2)
    naive, signal = rng.normal(size=shape), rng.normal(size=shape)
    truth = naive + signal
    model = naive + 0.8 * signal                 # field 0 knows the signal throughout
    model[:, :, 1] = naive[:, :, 1] + rng.normal(size=(90, 3))
    model[:30, :, 1] = naive[:30, :, 1] + 3 * signal[:30, :, 1]  # field 1: one strong episode, then noise
    scored = np.ones(shape, dtype=bool)
    pooled = fit_gate(model, naive, truth, scored, blocks=1)
    assert pooled[1] > 0.2                       # pooled over all windows the episode buys a weight ...
    blocked = fit_gate(model, naive, truth, scored)
    assert blocked[1] == 0.0                     # ... that does not pay off in the later blocks: closed
    assert blocked[0] == pytest.approx(pooled[0]) and blocked[0] == 1.0
    only_first = scored.copy()
    only_first[30:, :, 0] = False                # cells in one block only: not enough evidence over time
    assert fit_gate(model, naive, truth, only_first)[0] == 0.0


def test_the_stacked_gate_keeps_a_good_base_and_drops_a_noisy_correction():
    """Field 0: the base knows the signal, the network adds noise to it (keep the base, drop the correction: one
    weight on model - naive could do neither). Field 1: the base is noise, the network's correction recovers the
    signal (drop the base, keep the correction). Field 2: no base anywhere (the plain gate on model - naive)."""
    rng = np.random.default_rng(4)
    shape = (90, 3, 3)
    naive, signal = rng.normal(size=shape), rng.normal(size=shape)
    truth = naive + signal
    base = naive + signal
    base[..., 1] = naive[..., 1] + rng.normal(size=shape[:2])
    base[..., 2] = np.nan
    model = base + 2.0 * rng.normal(size=shape)
    model[..., 1] = truth[..., 1] + (base[..., 1] - naive[..., 1])  # corrects the base's noise back to the signal
    model[..., 2] = naive[..., 2] + signal[..., 2]
    scored = np.ones(shape, dtype=bool)
    a, b = fit_stacked_gate(model, base, naive, truth, scored)
    assert a[0] == pytest.approx(1.0) and b[0] == 0.0
    assert a[1] < 0.1 and b[1] > 0.9
    assert a[2] == 0.0 and b[2] == pytest.approx(1.0)
    single = fit_gate(model, naive, truth, scored)[0]
    assert single < 0.5  # the single weight gives the good base away with the noise
    gated = apply_stacked_gate(model, base, naive, a, b)
    single_gated = apply_gate(model, naive, np.full(3, single))
    assert np.mean((gated[..., 0] - truth[..., 0]) ** 2) < 0.01
    assert np.mean((single_gated[..., 0] - truth[..., 0]) ** 2) > 0.3
    np.testing.assert_allclose(gated[..., 2], naive[..., 2] + b[2] * signal[..., 2])
    np.testing.assert_allclose(apply_stacked_gate(model, None, naive, a, b), apply_gate(model, naive, b))


def test_the_group_gate_pools_short_fields_and_the_block_cap_keeps_half_of_each_blocks_gain():
    """Twenty short fields whose base carries a weak signal: one field's few cells cannot show in every block that
    it helps, the group's pooled cells can. A correction that helps in every block but less in the last is capped
    (kept, not closed) where it still earns half of that block's best gain."""
    rng = np.random.default_rng(5)
    shape = (60, 1, 20)
    naive, signal = rng.normal(size=shape), 0.4 * rng.normal(size=shape)
    truth = naive + signal + rng.normal(size=shape)
    base = naive + signal
    scored = rng.random(shape) < 0.5  # ~30 cells per field, ~10 per block
    per_field = fit_gate(base, naive, truth, scored)
    pooled = fit_group_gate(base, naive, truth, scored, ["macro"] * 20)
    assert (per_field < 0.2).sum() >= 5 and np.ptp(per_field) > 0.5  # noisy, often closed
    assert np.all(pooled == pooled[0]) and pooled[0] > 0.5
    assert (fit_group_gate(naive + rng.normal(size=shape), naive, truth, scored, ["macro"] * 20) < 0.1).all()
    # one field, three blocks whose own weights are 1.0, 1.0 and 0.4: pooled 0.8, capped at 0.4 (1 + 1/sqrt 2)
    correction = np.ones((90, 1, 1))
    target = np.concatenate([np.full(30, 1.0), np.full(30, 1.0), np.full(30, 0.4)])[:, None, None]
    weight = fit_gate(correction, np.zeros_like(correction), target, np.ones_like(correction, dtype=bool))[0]
    assert weight == pytest.approx(0.4 * (1 + 1 / np.sqrt(2)))
    assert fit_gate(correction, np.zeros_like(correction), -target, np.ones_like(correction, dtype=bool))[0] == 0.0



def test_the_gate_opens_only_where_the_corrections_gain_is_significant():
    """Overlapping windows, as the evaluation has them: window i holds cells i .. i+L-1 of one series, so a noise
    correction's per-window scores are autocorrelated. The plain least-squares weight opens on about half of 300
    noise fields; the confidence bound with Newey-West lags over twice the window length on few of them, at small
    weights, and on fewer than the same bound that ignores the overlap (lags=1). A weak real signal still opens."""
    rng = np.random.default_rng(6)
    n, L, F = 120, 8, 300
    rows = np.arange(n)[:, None] + np.arange(L)[None, :]
    noise_target, noise_correction = rng.normal(size=(n + L, F)), rng.normal(size=(n + L, F))
    naive = np.zeros((n, L, F))
    truth, model = noise_target[rows], noise_correction[rows]
    scored = np.ones((n, L, F), dtype=bool)
    plain = fit_gate(model, naive, truth, scored, blocks=1, confidence=0.0)
    overlap_blind = fit_gate(model, naive, truth, scored, blocks=1, lags=1)
    bounded = fit_gate(model, naive, truth, scored, blocks=1)
    assert 0.35 < (plain > 0).mean() < 0.65
    assert (bounded > 0).mean() < 0.15 and bounded.max() < 0.2
    assert (bounded > 0).sum() < (overlap_blind > 0).sum()
    assert np.all(bounded <= plain)
    weak = noise_correction[rows][..., :1]
    weak_truth = 0.5 * weak + noise_target[rows][..., :1]  # the correction carries a weak real signal
    assert fit_gate(weak, naive[..., :1], weak_truth, scored[..., :1])[0] > 0.2

# forecastable groups: where a classical model beats naive on validation -------------------------------

def test_forecastable_groups_come_from_validation_and_score_the_model_on_test(ar_canvas):
    from gwm_model.evaluation.forecastable import forecastable_groups, forecastable_summary

    outputs = np.ones(len(ar_canvas.paths), dtype=bool)
    groups = ["ar1", "walk", "quarterly"]
    persistence = np.zeros(len(ar_canvas.paths), dtype=bool)
    found = forecastable_groups(ar_canvas, np.arange(120, 236), 3, 6, 239, outputs, groups, persistence,
                                classical=("ar",), min_cells=100)
    # the two mean-reverting AR(1) fields are forecastable (AR, fitted before the validation windows, beats naive
    # there); the random walk is not (fitted on the whole training period instead, AR "beat" it with skill 0.22)
    assert set(found) == {"ar1", "quarterly"} and found["ar1"]["forecaster"] == "ar"
    assert found["ar1"]["val_skill"] > 0.2 and found["ar1"]["dm_pvalue"] < 0.05 and found["ar1"]["n_cells"] >= 100
    assert forecastable_groups(ar_canvas, np.arange(120, 236), 3, 6, 239, outputs, groups, persistence,
                               classical=()) == {}
    # the summary reads the test table: model and AR skill on the forecastable groups only
    test = pd.DataFrame([
        {"model": "model", "group": "ar1", "horizon": "all", "n_common": 500, "skill": 0.31},
        {"model": "ar", "group": "ar1", "horizon": "all", "n_common": 500, "skill": 0.33},
        {"model": "model", "group": "walk", "horizon": "all", "n_common": 500, "skill": -0.4},
        {"model": "model", "group": "ar1", "horizon": 1, "n_common": 90, "skill": 0.9}])
    summary = forecastable_summary(test, found)
    assert summary["forecastable_groups"] == ["ar1"]
    assert summary["forecastable_group_skill"] == pytest.approx(0.31)
    assert summary["forecastable_classical_skill"] == pytest.approx(0.33)
    assert forecastable_summary(test, {})["forecastable_group_skill"] is None
