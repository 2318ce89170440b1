"""Samples: point-in-time inputs (no look-ahead, proven by truncation), forecast targets, user data sets, mixing."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from gwm_model.canvas import (
    CanvasWindows,
    DatasetSpec,
    InputSpec,
    OutputSpec,
    build_canvas,
    build_mixed_dataloader,
    compile_canvas,
    make_time_axis,
)
from tests.test_canvas_build import CLAIMS, CPI, END, GDP, NEWS, PATHS, SP500, START, observations

TRANSFORMS = {CPI: "pct_change", CLAIMS: "zscore", GDP: "log_return"}


@pytest.fixture(scope="module")
def projection(world):
    return world.project(PATHS)


def sample_at(windows: CanvasWindows, day: str) -> dict[str, torch.Tensor]:
    step = windows.canvas.axis.index(day)
    return windows[int(np.flatnonzero(windows.anchors == step)[0])]


@pytest.mark.parametrize(("frequency", "context", "horizon"), [("daily", 60, 20), ("business", 40, 10),
                                                               ("monthly", 6, 3)])
def test_inputs_are_identical_whether_built_from_all_data_or_only_what_was_published(projection, frequency,
                                                                                      context, horizon):
    full = observations()
    cut_at = np.datetime64("2021-09-15T00:00", "us")
    known = full.filter(pl.col("available_at") <= cut_at)
    axis = make_time_axis(START, END, frequency)
    kwargs = {"train_end": "2021-06-30", "transforms": TRANSFORMS}
    later, then = build_canvas(full, projection, axis, **kwargs), build_canvas(known, projection, axis, **kwargs)
    assert later.stats == then.stats
    from_all, from_known = CanvasWindows(later, context, horizon), CanvasWindows(then, context, horizon)
    anchors = np.flatnonzero(axis.cutoffs_us[from_all.anchors] <= cut_at.astype(np.int64))
    assert anchors.size >= 5 and anchors[-1] == anchors.size - 1
    hidden = changed_targets = 0
    for index in anchors:
        a, b = from_all[index], from_known[index]
        assert torch.equal(a["inputs"], b["inputs"]), f"anchor {axis.starts[from_all.anchors[index]]}"
        assert torch.equal(a["input_mask"], b["input_mask"])
        hidden += int((a["target_mask"][:context] & ~a["input_mask"][:context]).sum())
        changed_targets += int(not torch.equal(a["targets"], b["targets"]))
    # the proof has teeth: the full canvas holds, inside those windows, values the inputs must not show
    assert hidden > 0 and changed_targets > 0


def test_quarterly_gdp_is_invisible_until_30_days_after_quarter_end(projection):
    canvas = build_canvas(observations(), projection, make_time_axis(START, END), train_end="2021-06-30")
    windows = CanvasWindows(canvas, context=150, horizon=10)
    gdp = canvas.field_index(GDP)
    q2 = canvas.axis.index("2021-04-01")  # Q2 2021 ends 06-30, published 07-30 08:00
    for day, visible in (("2021-07-01", False), ("2021-07-15", False), ("2021-07-29", False),
                         ("2021-07-30", True), ("2021-08-20", True)):
        sample = sample_at(windows, day)
        row = q2 - (canvas.axis.index(day) - windows.context + 1)
        assert bool(sample["input_mask"][row, gdp]) is visible, day
        assert bool(sample["target_mask"][row, gdp])  # ground truth is a target either way
        slot = canvas.offsets[gdp]
        assert sample["inputs"][row, slot] == (sample["targets"][row, slot] if visible else 0)
    assert sample["targets"][row, slot] != 0


def test_windows_forecast_future_cells_and_hide_them_from_inputs(projection):
    canvas = build_canvas(observations(), projection, make_time_axis(START, END), train_end="2021-06-30")
    windows = CanvasWindows(canvas, context=30, horizon=7)
    sample = sample_at(windows, "2021-03-10")  # a Wednesday
    L, S, F = 37, canvas.values.shape[1], len(PATHS)
    assert sample["inputs"].shape == sample["targets"].shape == (L, S)
    assert sample["input_mask"].shape == sample["target_mask"].shape == (L, F)
    assert int(sample["anchor"]) == canvas.axis.index("2021-03-10")
    march = windows.anchors_between("2021-03-01", "2021-03-31")
    assert march.size == 31 and windows[int(march[9])]["anchor"] == sample["anchor"]
    assert torch.equal(sample["loss_weight"], torch.tensor([1.0, 1.0, 2.0, 1.0, 0.5]))
    sp500, news = canvas.field_index(SP500), canvas.field_index(NEWS)
    future = slice(30, L)
    assert sample["target_mask"][future, sp500].sum() == 5 and sample["target_mask"][future, news].all()
    assert not sample["input_mask"][future].any() and not sample["inputs"][future].any()
    # the anchor day's own S&P close (published 22:00) and news (23:00) are inside its cutoff
    assert sample["input_mask"][29, sp500] and sample["input_mask"][29, news]
    # slot-level masking: a hidden field's slots are exactly zero, a visible one's equal the targets
    visible_slots = sample["input_mask"][:, canvas.slot_field]
    assert torch.equal(sample["inputs"], sample["targets"] * visible_slots)
    positions = canvas.positions.scatter_values(sample["inputs"], grid=True)
    assert positions.shape == (L, canvas.layout.H, canvas.layout.W)


def _user_table(days: int, seed: int, shuffle: bool = True) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    dates = np.arange(np.datetime64("2015-01-01"), np.datetime64("2015-01-01") + days, dtype="datetime64[D]")
    first_of_month = dates == dates.astype("datetime64[M]").astype("datetime64[D]")
    quarter_start = first_of_month & (dates.astype("datetime64[M]").astype(np.int64) % 3 == 0)
    table = pl.DataFrame({
        "date": dates,
        "spx": np.where(np.is_busday(dates), 2000 * np.exp(np.cumsum(rng.normal(0, 0.01, days))), np.nan),
        "cpi": pl.Series(np.where(first_of_month, 240 + np.arange(days) / 30, np.nan)).fill_nan(None),
        "gdp": pl.Series(np.where(quarter_start, 18e3 + np.arange(days), np.nan)).fill_nan(None),
        "claims": np.where(dates.astype(np.int64) % 7 == 2, rng.normal(220e3, 1e4, days), np.nan),
    })  # gaps as nulls or NaN: both mean "no value that day"
    return table.sample(fraction=1.0, shuffle=True, seed=seed) if shuffle else table


def test_user_data_sets_follow_their_specs_and_align_by_date(world):
    bound = compile_canvas(world.project([SP500, CPI, GDP]))
    encoder = torch.nn.Linear(1, 4)
    spec = DatasetSpec(
        name="macro_and_markets",
        input_specs=[InputSpec("spx", "S&P 500 index level", SP500, transform="log_return", frequency="daily"),
                     InputSpec("cpi", "US CPI level", CPI, frequency="monthly", release_lag_days=14, encoder=encoder)],
        output_specs=[OutputSpec("cpi", "US CPI level", CPI, loss_weight=2.5),
                      OutputSpec("gdp", "US real GDP level", GDP, loss_weight=2.0)],
    )
    table = _user_table(400, seed=1)  # rows shuffled: only the date column says where a value goes
    loader = build_mixed_dataloader(bound, [(spec, table)], batch_size=16, context=40, horizon=5, seed=3)
    dataset = loader.dataset
    canvas = dataset.canvases[0]
    assert canvas.axis.frequency == "daily" and len(canvas.axis) == 400
    cpi, gdp, sp500 = (canvas.field_index(p) for p in (CPI, GDP, SP500))
    feb = canvas.axis.index("2015-02-01")
    assert canvas.presence[:, cpi].sum() == 14 and canvas.presence[feb, cpi]
    assert canvas.field_values(CPI)[feb, 0] == pytest.approx(240 + 31 / 30)
    assert canvas.available_at[feb, cpi] == np.datetime64("2015-02-15T00:00")
    assert dataset.encoders == {CPI: encoder} and dataset.semantic_types[GDP] == "US real GDP level"
    assert dataset.losses == {CPI: "mse", GDP: "mse"}

    batch = next(iter(loader))
    expected = torch.zeros(3)
    expected[cpi], expected[gdp] = 2.5, 2.0  # the outputs' weights; S&P 500 is an input only
    assert torch.equal(batch["loss_weight"], expected.expand(16, 3))
    assert not batch["input_mask"][..., gdp].any()  # an output only: never an input
    assert not batch["target_mask"][..., sp500].any()  # an input only: never a target
    assert batch["input_mask"][..., sp500].any() and batch["target_mask"][..., gdp].any()
    sample = dataset[int(np.flatnonzero(dataset.parts[0].anchors == canvas.axis.index("2015-03-10"))[0])]
    row = feb - (canvas.axis.index("2015-03-10") - 39)
    assert sample["input_mask"][row, cpi]  # published 02-15, before the anchor
    march = canvas.axis.index("2015-03-01") - (canvas.axis.index("2015-03-10") - 39)
    assert not sample["input_mask"][march, cpi] and sample["target_mask"][march, cpi]  # due 03-15


def test_mixed_loader_draws_each_data_set_in_proportion_to_its_weight(world):
    bound = world.project([SP500, CPI, CLAIMS])
    sources = [
        (DatasetSpec("markets", [InputSpec("spx", "S&P 500", SP500)], [OutputSpec("spx", "S&P 500", SP500)],
                     weight=1.0), _user_table(700, seed=2, shuffle=False)),
        (DatasetSpec("prices", [InputSpec("cpi", "CPI", CPI, frequency="monthly")],
                     [OutputSpec("cpi", "CPI", CPI)], weight=2.0), _user_table(3000, seed=3, shuffle=False)),
        (DatasetSpec("labour", [InputSpec("claims", "jobless claims", CLAIMS, frequency="weekly")],
                     [OutputSpec("claims", "jobless claims", CLAIMS)], weight=5.0), _user_table(1500, seed=4)),
    ]
    loader = build_mixed_dataloader(bound, sources, batch_size=500, num_samples=8000, seed=0)
    sizes = np.diff(loader.dataset.bounds)
    assert sizes.tolist() == [692, 91, 206]  # uniform draws would give shares 0.70 / 0.09 / 0.21
    drawn = torch.cat([batch["source"] for batch in loader])
    share = torch.bincount(drawn, minlength=3).double() / drawn.numel()
    assert drawn.numel() == 8000
    np.testing.assert_allclose(share.numpy(), [1 / 8, 2 / 8, 5 / 8], atol=0.02)


def test_user_data_errors_name_the_fix(world):
    bound = world.project([SP500, CPI])
    table = _user_table(100, seed=0)
    with pytest.raises(ValueError, match=r"has no column\(s\) \['vix'\]"):
        build_mixed_dataloader(bound, [(DatasetSpec("x", [InputSpec("vix", "VIX", SP500)]), table)])
    with pytest.raises(Exception, match=r"not in this projection"):
        build_mixed_dataloader(bound, [(DatasetSpec("x", [InputSpec("cpi", "CPI", GDP)]), table)])
    with pytest.raises(ValueError, match=r"maps key 'cpi' to two fields"):
        DatasetSpec("x", [InputSpec("cpi", "CPI", CPI)], [OutputSpec("cpi", "CPI", SP500)])
    with pytest.raises(ValueError, match=r"too few for one window"):
        build_mixed_dataloader(bound, [(DatasetSpec("x", [InputSpec("cpi", "CPI", CPI, frequency="monthly")]),
                                        table)], context=8)
