"""The do-no-harm gate refitted at each forecast origin on the errors published by then (``rolling_stacked_gate``),
and its one-weight form for the nowcasts of late releases inside the context (``rolling_late_release_gate``)."""

from __future__ import annotations

import numpy as np
import pytest

from gwm_model.evaluation.gate import fit_stacked_gate
from gwm_model.evaluation.rolling_gate import GateWindows, rolling_late_release_gate, rolling_stacked_gate

L = 3  # cells at and after the anchor: offsets 0, 1, 2


def _windows(anchors: np.ndarray, truth: np.ndarray, base: np.ndarray, naive: np.ndarray,
             model: np.ndarray | None = None) -> GateWindows:
    steps = anchors[:, None, None] + np.arange(L)[None, :, None] + np.zeros((1, 1, truth.shape[-1]), dtype=np.int64)
    return GateWindows(anchors, base if model is None else model, base, naive, truth,
                       np.ones(truth.shape, dtype=bool), steps + 1)  # a step's value is published one step later


def _world(seed: int = 0, n: int = 60, break_at: int = 90):
    """Two fields over anchors 0..2n-1; the base knows the signal until step ``break_at`` (field 0) or throughout
    (field 1); after the break field 0's base is noise."""
    rng = np.random.default_rng(seed)
    anchors = np.arange(2 * n)
    steps = anchors[:, None] + np.arange(L)[None, :]
    naive, signal = rng.normal(size=(2 * n, L, 2)), rng.normal(size=(2 * n, L, 2))
    truth = naive + signal
    base = truth + 0.1 * rng.normal(size=truth.shape)
    broken = steps >= break_at
    base[..., 0] = np.where(broken, naive[..., 0] + 2.0 * rng.normal(size=steps.shape), base[..., 0])
    return anchors, truth, base, naive


def _split(anchors, *arrays, n: int = 60):
    first = [a[:n] for a in (anchors, *arrays)]
    second = [a[n:] for a in (anchors, *arrays)]
    return _windows(*first), _windows(*second)


def test_a_base_that_stops_paying_off_is_switched_off_once_its_errors_are_published():
    anchors, truth, base, naive = _world()
    history, target = _split(anchors, truth, base, naive)
    known = history.scored & (history.published <= 60)  # the history's last windows end after the first origin
    static_a, _ = fit_stacked_gate(history.model, history.base, history.naive, history.truth, known)
    assert static_a[0] > 0.95  # validation alone: the base is good (its confidence bound a little under 1)
    a, b, a_last, b_last = rolling_stacked_gate(history, target, end_step=200)
    assert a.shape == (60, 2)
    assert a[0, 0] == pytest.approx(static_a[0])  # the first origin knows only the history, as published by then
    first_bad = np.flatnonzero(a[:, 0] < 0.5)
    assert first_bad.size and anchors[60 + first_bad[0]] <= 110  # closes within 20 steps of the break at 90
    assert np.all(a[-5:, 0] < 0.3) and a_last[0] < 0.3 and a[-1, 0] < a[20, 0] < a[0, 0]
    assert np.all(a[:, 1] > 0.9) and a_last[1] > 0.9  # the other field's base keeps paying off: kept
    assert np.all(b == 0.0) and np.all(b_last == 0.0)  # the model is its base: no correction to weigh


def test_the_weights_at_an_origin_never_read_a_value_published_after_it():
    anchors, truth, base, naive = _world(seed=1)
    history, target = _split(anchors, truth, base, naive)
    a, _, _, _ = rolling_stacked_gate(history, target, end_step=200)
    origin = 95
    later = truth.copy()
    steps = anchors[:, None] + np.arange(L)[None, :]
    later[steps + 1 > origin] += 50.0  # every value published after the origin changes wildly
    history2, target2 = _split(anchors, later, base, naive)
    a2, _, _, _ = rolling_stacked_gate(history2, target2, end_step=200)
    upto = np.flatnonzero(target.anchors <= origin)
    np.testing.assert_array_equal(a[upto], a2[upto])
    assert not np.array_equal(a[upto[-1] + 5:], a2[upto[-1] + 5:])  # ... and later origins do read them


def test_the_served_weights_use_only_what_was_published_by_the_end_step():
    anchors, truth, base, naive = _world(seed=2)
    history, target = _split(anchors, truth, base, naive)
    _, _, before_break, _ = rolling_stacked_gate(history, target, end_step=88)
    _, _, after_break, _ = rolling_stacked_gate(history, target, end_step=200)
    assert before_break[0] > 0.9 and after_break[0] < 0.5


def test_a_network_correction_that_turns_into_noise_is_dropped_and_bad_input_is_refused():
    anchors, truth, base, naive = _world(seed=3, break_at=10_000)  # the base stays good
    rng = np.random.default_rng(5)
    base = naive + 0.5 * (truth - naive)  # the base knows half the signal ...
    model = truth.copy()  # ... the network the rest, until step 90, then it adds noise
    steps = anchors[:, None] + np.arange(L)[None, :]
    model[..., 0] = np.where(steps >= 90, base[..., 0] + 2.0 * rng.normal(size=steps.shape), model[..., 0])
    history = _windows(anchors[:60], truth[:60], base[:60], naive[:60], model[:60])
    target = _windows(anchors[60:], truth[60:], base[60:], naive[60:], model[60:])
    a, b, _, b_last = rolling_stacked_gate(history, target, end_step=200)
    assert b[0, 0] > 0.9 and b[-1, 0] < 0.3 and b_last[0] < 0.3
    assert np.all(b[:, 1] > 0.9) and np.all(a > 0.4)
    with pytest.raises(ValueError, match="increasing"):
        rolling_stacked_gate(history, _windows(anchors[60:][::-1], truth[60:], base[60:], naive[60:]), 200)
    with pytest.raises(ValueError, match="shape"):
        GateWindows(anchors[:5], truth[:5], None, naive[:5], truth[:4], np.ones((5, L, 2), bool), steps[:5, :, None])


def _late_windows(anchors: np.ndarray, truth: np.ndarray, naive: np.ndarray, model: np.ndarray,
                  scored: np.ndarray, base: np.ndarray | None = None) -> GateWindows:
    """Rows at offsets -2 and -1 of each anchor, each published two steps after its own step (after the anchor)."""
    steps = anchors[:, None] + np.array([-2, -1])[None, :]
    published = np.broadcast_to((steps + 2)[..., None], truth.shape).copy()
    return GateWindows(anchors, model, base, naive, truth, scored, published)


def _late_world(n: int = 160, seed: int = 7):
    """Four fields of late releases: a network nowcast that knows the unpublished value, one that is noise, one
    field with no late-release cell, and one whose network is noise but whose AR nowcast (the base) knows half of
    the signal."""
    rng = np.random.default_rng(seed)
    naive = rng.normal(size=(n, 2, 4))
    truth = naive + rng.normal(size=naive.shape)
    model = truth + 0.2 * rng.normal(size=truth.shape)
    model[..., 1] = naive[..., 1] + 1.5 * rng.normal(size=(n, 2))
    base = naive + 0.01 * rng.normal(size=naive.shape)  # no better than naive ...
    base[..., 3] = naive[..., 3] + 0.5 * (truth[..., 3] - naive[..., 3])  # ... except on field 3
    model[..., 3] = base[..., 3] + 1.5 * rng.normal(size=(n, 2))
    scored = np.ones(truth.shape, dtype=bool)
    scored[..., 2] = False
    return np.arange(n), truth, naive, model, scored, base


def test_late_release_nowcasts_keep_what_knows_the_value_and_fall_back_on_noise():
    """The stacked gate over each late release's AR nowcast: a network that knows the unpublished value is kept, a
    noisy one is closed (naive's nowcast, or the base's where the base knows something), and a field with no
    late-release cell gets weights 0 and keeps its rows as they were."""
    anchors, truth, naive, model, scored, base = _late_world()
    windows = _late_windows(anchors, truth, naive, model, scored, base)
    history, target = windows.take(slice(0, 80)), windows.take(slice(80, None))
    gated, a_last, b_last = rolling_late_release_gate(history, target, end_step=anchors.size + 2)
    assert b_last[0] > 0.9 and b_last[1] == 0.0 and b_last[3] == 0.0
    assert a_last[3] > 0.7 and a_last[2] == b_last[2] == 0.0
    mse = lambda x, f: float(((x[..., f] - target.truth[..., f]) ** 2).mean())  # noqa: E731
    assert mse(gated, 0) < 0.1 * mse(target.naive, 0)  # the useful nowcast stays far better than naive
    assert mse(target.model, 1) > 2.0 * mse(target.naive, 1)  # ungated, the noisy one is far worse than naive ...
    assert mse(gated, 1) < 1.05 * mse(target.naive, 1)  # ... gated, no worse than naive
    assert mse(gated, 3) < 0.5 * mse(target.naive, 3)  # the base's half of the signal is kept without the noise
    np.testing.assert_array_equal(gated[..., 2], target.model[..., 2])
    # over naive alone, the one weight on field 3's noisy network keeps less of the signal the base carries
    plain = _late_windows(anchors, truth, naive, model, scored)
    alone, a_plain, _ = rolling_late_release_gate(plain.take(slice(0, 80)), plain.take(slice(80, None)),
                                                  end_step=anchors.size + 2)
    assert np.all(a_plain == 0.0) and mse(gated, 3) < 0.5 * mse(alone, 3)  # measured: 0.27 against 0.96


def test_a_late_release_weight_at_an_origin_reads_only_nowcasts_published_by_it():
    rng = np.random.default_rng(8)
    n = 120
    anchors = np.arange(n)
    naive = rng.normal(size=(n, 2, 1))
    truth = naive + rng.normal(size=naive.shape)
    model = truth + 0.5 * rng.normal(size=naive.shape)
    windows = _late_windows(anchors, truth, naive, model, np.ones(naive.shape, dtype=bool))
    origin = 90
    changed = truth.copy()
    changed[windows.published > origin] += 50.0  # every value published after the origin changes wildly
    later = _late_windows(anchors, changed, naive, model, np.ones(naive.shape, dtype=bool))
    first = rolling_late_release_gate(windows.take(slice(0, 60)), windows.take(slice(60, n)), n + 2)[0]
    second = rolling_late_release_gate(later.take(slice(0, 60)), later.take(slice(60, n)), n + 2)[0]
    upto = np.flatnonzero(anchors[60:] <= origin)
    np.testing.assert_array_equal(first[upto], second[upto])
    assert not np.array_equal(first[upto[-1] + 5:], second[upto[-1] + 5:])
