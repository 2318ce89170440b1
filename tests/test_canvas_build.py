"""Canvas building: as-of alignment by date, transforms on own dates, training-only normalisation, files."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
import torch

from gwm_model.canvas import (
    Canvas,
    SlotPositions,
    TimeAxis,
    base_frequency,
    build_canvas,
    make_time_axis,
    pack_layout,
)
from gwm_model.canvas.normalise import MIN_NORM_CELLS

SP500 = "financial.equities.indices.sp500"
CLAIMS = "country_us.macro.labor.initial_claims"
CPI = "country_us.macro.inflation.headline_cpi"
GDP = "country_us.macro.output.gdp_official.value"
NEWS = "events.news_embedding"
PATHS = [SP500, CLAIMS, CPI, GDP, NEWS]
NEWS_DIM = 16
START, END = np.datetime64("2020-01-01"), np.datetime64("2022-12-31")
HOUR = np.timedelta64(1, "h")


def _rows(path: str, ts: np.ndarray, available: np.ndarray, value: np.ndarray, source: str = "fred",
          vectors: np.ndarray | None = None) -> pl.DataFrame:
    return pl.DataFrame({
        "field_path": [path] * ts.size,
        "ts": ts.astype("datetime64[D]"),
        "available_at": available.astype("datetime64[us]"),
        "value": value.astype(np.float64),
        "revised_value": value.astype(np.float64) * 1.01,
        "vector": pl.Series([None] * ts.size, dtype=pl.List(pl.Float32)) if vectors is None
        else pl.Series(vectors.astype(np.float32).tolist(), dtype=pl.List(pl.Float32)),
        "source": [source] * ts.size,
        "source_key": [path.rsplit(".", 1)[-1]] * ts.size,
    })


def observations(seed: int = 0) -> pl.DataFrame:
    """Five real world fields at four frequencies with realistic publication delays, 2020-2022.

    S&P 500 on business days (published that evening, by two sources), weekly claims dated the
    Saturday ending the week (published the next Thursday), monthly CPI dated the 1st (published
    mid next month), quarterly GDP dated the quarter start (published 30 days after quarter end),
    and a daily 16-d news embedding (published at the end of its day).
    """
    rng = np.random.default_rng(seed)
    days = np.arange(START, END + 1, dtype="datetime64[D]")
    business = days[np.is_busday(days)]
    sp500 = 3000 * np.exp(np.cumsum(rng.normal(0, 0.01, business.size)))
    saturdays = days[days.astype(np.int64) % 7 == 2]  # 1970-01-01 was a Thursday, 01-03 a Saturday
    months = np.arange("2020-01", "2023-01", dtype="datetime64[M]")
    month_starts = months.astype("datetime64[D]")
    quarters = months[::3]
    quarter_ends = (quarters + 3).astype("datetime64[D]") - 1
    return pl.concat([
        _rows(SP500, business, business + 22 * HOUR, sp500, source="yahoo"),
        _rows(SP500, business, business + 30 * HOUR, sp500 + 0.5, source="fred"),  # later: yahoo wins
        _rows(CLAIMS, saturdays, saturdays + 5 * 24 * HOUR + 13 * HOUR, rng.normal(220e3, 15e3, saturdays.size)),
        _rows(CPI, month_starts, (months + 1).astype("datetime64[D]") + 11 * 24 * HOUR + 12 * HOUR,
              250 * np.exp(np.cumsum(rng.normal(0.003, 0.002, months.size)))),
        _rows(GDP, quarters.astype("datetime64[D]"), (quarter_ends + 30).astype("datetime64[us]") + 8 * HOUR,
              20e3 * np.exp(np.cumsum(rng.normal(0.005, 0.01, quarters.size)))),
        _rows(NEWS, days, days + 23 * HOUR, np.full(days.size, 40.0), source="news",
              vectors=rng.normal(0, 1, (days.size, NEWS_DIM))),
    ])


@pytest.fixture(scope="module")
def projection(world):
    return world.project(PATHS)


def raw_series(frame: pl.DataFrame, path: str, source: str = "fred") -> tuple[np.ndarray, np.ndarray]:
    rows = frame.filter((pl.col("field_path") == path) & (pl.col("source") == source)).sort("ts")
    return rows["ts"].to_numpy().astype("datetime64[D]"), rows["value"].to_numpy()


def test_time_axes_are_regular_calendars():
    daily = make_time_axis("2024-01-01", "2024-12-31", "daily")
    business = make_time_axis("2024-01-01", "2024-12-31", "business")
    weekly = make_time_axis("2024-01-03", "2024-12-31", "weekly")
    monthly = make_time_axis("2024-01-15", "2024-12-31", "monthly")
    quarterly = make_time_axis("2024-02-10", "2024-12-31", "quarterly")
    assert (len(daily), len(business), len(monthly), len(quarterly)) == (366, 262, 12, 4)
    assert str(weekly.starts[0]) == "2024-01-01" and np.all(np.diff(weekly.starts).astype(int) == 7)
    assert str(monthly.starts[0]) == "2024-01-01" and str(quarterly.starts[0]) == "2024-01-01"
    # a Saturday belongs to Friday's business-day step; days outside the axis to none
    assert business.starts[business.index("2024-03-09")] == np.datetime64("2024-03-08")
    assert monthly.step_of(["2023-12-31", "2024-03-31", "2025-01-01"]).tolist() == [-1, 2, -1]
    assert monthly.cutoff(2) == np.datetime64("2024-04-01T00:00:00", "us")
    for axis in (daily, business, weekly, monthly, quarterly):
        assert TimeAxis.from_dict(axis.to_dict()) == axis


def test_base_frequency_is_that_of_the_fastest_leaf(world):
    assert base_frequency(world.project([CPI, GDP]).fields) == "monthly"
    assert base_frequency(world.project([CPI, CLAIMS]).fields) == "weekly"
    assert base_frequency(world.project([CPI, SP500]).fields) == "daily"


def test_monthly_weekly_and_daily_series_land_on_their_dates(projection):
    frame = observations()
    axis = make_time_axis(START, END, "daily")
    canvas = build_canvas(frame, projection, axis, train_end="2021-12-31")
    for path, source in ((CPI, "fred"), (CLAIMS, "fred"), (SP500, "yahoo")):
        ts, value = raw_series(frame, path, source)
        i = canvas.field_index(path)
        assert np.array_equal(np.flatnonzero(canvas.presence[:, i]), axis.step_of(ts)), path
        assert np.array_equal(axis.starts[canvas.presence[:, i]], ts)
        np.testing.assert_allclose(canvas.field_values(path)[canvas.presence[:, i], 0], value, rtol=1e-6)
    cpi = canvas.field_index(CPI)
    assert canvas.presence[axis.index("2021-03-01"), cpi] and not canvas.presence[axis.index("2021-03-02"), cpi]
    assert canvas.presence[:, cpi].sum() == 36 and canvas.presence[:, canvas.field_index(GDP)].sum() == 12
    # CPI for March 2021 was published on 2021-04-12 12:00; absent cells are never published
    assert canvas.available_at[axis.index("2021-03-01"), cpi] == np.datetime64("2021-04-12T12:00")
    assert np.isnat(canvas.available_at[axis.index("2021-03-02"), cpi])
    # the same table as Arrow, publication times in UTC with a time zone: the same canvas
    arrow = frame.with_columns(pl.col("available_at").dt.replace_time_zone("UTC")).to_arrow()
    from_arrow = build_canvas(arrow, projection, axis, train_end="2021-12-31")
    for name in ("values", "presence", "available_us"):
        assert np.array_equal(getattr(from_arrow, name), getattr(canvas, name)), name


def test_a_daily_series_on_a_monthly_axis_keeps_the_last_observation_of_each_month(projection):
    frame = observations()
    axis = make_time_axis(START, END, "monthly")
    canvas = build_canvas(frame, projection, axis, train_end="2021-12-31")
    ts, value = raw_series(frame, SP500, "yahoo")
    i = canvas.field_index(SP500)
    assert canvas.presence[:, i].all()
    march = axis.index("2021-03-01")
    last_march_day = ts[ts < np.datetime64("2021-04-01")].max()  # 2021-03-31, a Wednesday
    assert canvas.field_values(SP500)[march, 0] == pytest.approx(value[ts == last_march_day][0], rel=1e-6)
    assert canvas.available_at[march, i] == last_march_day + 22 * HOUR
    # CPI dated the 1st sits in its own month; weekly claims: the last Saturday of the month
    assert canvas.field_values(CPI)[march, 0] == pytest.approx(raw_series(frame, CPI)[1][14], rel=1e-6)
    claims_ts, claims = raw_series(frame, CLAIMS)
    assert canvas.field_values(CLAIMS)[march, 0] == pytest.approx(claims[claims_ts == np.datetime64("2021-03-27")][0])


def test_earliest_published_source_wins_and_caller_order_breaks_ties(projection):
    frame = observations()
    axis = make_time_axis("2021-01-01", "2021-01-31", "daily")
    canvas = build_canvas(frame, projection, axis, train_end="2021-01-31")
    yahoo_ts, yahoo = raw_series(frame, SP500, "yahoo")
    first_day = yahoo_ts.searchsorted(np.datetime64("2021-01-04"))
    assert canvas.field_values(SP500)[3, 0] == pytest.approx(yahoo[first_day], rel=1e-6)  # yahoo published first
    tied = frame.with_columns(pl.when(pl.col("source") == "fred").then(pl.col("available_at") - pl.duration(hours=8))
                              .otherwise(pl.col("available_at")).alias("available_at"))
    by_alphabet = build_canvas(tied, projection, axis, train_end="2021-01-31")
    by_order = build_canvas(tied, projection, axis, train_end="2021-01-31", source_order=["yahoo"])
    assert by_alphabet.field_values(SP500)[3, 0] == pytest.approx(yahoo[first_day] + 0.5, rel=1e-6)  # fred < yahoo
    assert by_order.field_values(SP500)[3, 0] == pytest.approx(yahoo[first_day], rel=1e-6)


def test_pct_change_of_a_monthly_series_is_month_over_month_on_a_daily_axis(projection):
    frame = observations()
    axis = make_time_axis(START, END, "daily")
    canvas = build_canvas(frame, projection, axis, train_end="2021-12-31",
                          transforms={CPI: "pct_change", GDP: "diff"})
    ts, cpi = raw_series(frame, CPI)
    i = canvas.field_index(CPI)
    present = canvas.presence[:, i]
    assert np.array_equal(axis.starts[present], ts[1:])  # the first month has nothing to compare with
    np.testing.assert_allclose(canvas.field_values(CPI)[present, 0], 100 * (cpi[1:] / cpi[:-1] - 1), rtol=1e-5)
    assert present.sum() == 35  # 35 monthly changes, not ~1000 day-over-day ones (mostly zero after a fill)
    # a change is published once both of its months are: the later of the two releases
    published = frame.filter(pl.col("field_path") == CPI).sort("ts")["available_at"].to_numpy()
    assert np.array_equal(canvas.available_at[present, i], np.maximum(published[1:], published[:-1]))
    gdp_ts, gdp = raw_series(frame, GDP)
    np.testing.assert_allclose(canvas.field_values(GDP)[canvas.presence[:, canvas.field_index(GDP)], 0],
                               np.diff(gdp), rtol=1e-5)


def test_normalisation_is_fitted_on_the_training_period_only(projection):
    frame = observations()
    axis = make_time_axis(START, END, "daily")
    train_end = "2021-06-30"
    base = build_canvas(frame, projection, axis, train_end=train_end)
    later = pl.col("ts") > dt.date(2021, 6, 30)
    changed = build_canvas(frame.with_columns(pl.when(later).then(pl.col("value") * 10 + 7).otherwise(pl.col("value"))
                                              .alias("value")), projection, axis, train_end=train_end)
    assert changed.stats == base.stats
    # GDP for 2021 Q2 is dated before train_end but published after it: it is not training data either
    late_gdp = (pl.col("field_path") == GDP) & (pl.col("ts") == dt.date(2021, 4, 1))
    revised = build_canvas(frame.with_columns(pl.when(late_gdp).then(1e9).otherwise(pl.col("value")).alias("value")),
                           projection, axis, train_end=train_end)
    assert revised.stats == base.stats and base.stats.count[GDP] == 5
    earlier = build_canvas(frame.with_columns(pl.when(~later).then(pl.col("value") * 2).otherwise(pl.col("value"))
                                              .alias("value")), projection, axis, train_end=train_end)
    assert earlier.stats.mean[CPI] == pytest.approx(2 * base.stats.mean[CPI])
    for path in (CPI, SP500):
        i = base.field_index(path)
        train = base.presence[:, i] & (axis.starts <= np.datetime64(train_end))
        train &= base.available_at[:, i] < np.datetime64("2021-07-01")
        assert base.values[train, base.offsets[i]].mean() == pytest.approx(0, abs=1e-5)
        if base.stats.count[path] >= MIN_NORM_CELLS:  # the S&P's 370 training days: exactly standardised
            assert base.values[train, base.offsets[i]].std() == pytest.approx(1, abs=1e-4)
        else:  # CPI's 17 months: a spread floored at a quarter of the level, so its values stay within +-4
            assert base.stats.count[path] == 17
            assert base.stats.std[path] == pytest.approx(0.25 * abs(base.stats.mean[path]))
    assert np.all(base.values[~base.presence[:, base.slot_field]] == 0)


def test_a_constant_series_normalises_to_zero(projection):
    frame = observations().with_columns(pl.when(pl.col("field_path") == CLAIMS).then(230e3)
                                        .otherwise(pl.col("value")).alias("value"))
    canvas = build_canvas(frame, projection, make_time_axis(START, END), train_end="2021-12-31")
    i = canvas.field_index(CLAIMS)
    assert canvas.stats.std[CLAIMS] == 1.0 and canvas.stats.mean[CLAIMS] == 230e3
    assert np.all(canvas.values[:, canvas.offsets[i]] == 0) and np.isfinite(canvas.values).all()


def test_vector_fields_take_their_slots_and_spread_over_their_positions(projection):
    frame = observations()
    axis = make_time_axis("2021-01-01", "2021-01-10")
    inferred = build_canvas(frame, projection, axis, train_end="2021-01-05")
    declared = build_canvas(frame.filter(pl.col("field_path") != NEWS), projection, axis, train_end="2021-01-05",
                            vector_slots={NEWS: NEWS_DIM})
    assert inferred.slots == declared.slots == (1, 1, 1, 1, NEWS_DIM)
    news = frame.filter((pl.col("field_path") == NEWS) & (pl.col("ts") == dt.date(2021, 1, 3)))
    expected = np.array(news["vector"][0], dtype=np.float64)
    np.testing.assert_allclose(inferred.field_values(NEWS)[2], expected, rtol=1e-5)
    with pytest.raises(ValueError, match=r"length 16 where 64 slots are expected"):
        build_canvas(frame, projection, axis, train_end="2021-01-05", vector_slots={NEWS: 64})

    # 64 slots on the 4x8 footprint: 2 channels per position; scalars broadcast; empty positions 0
    layout = pack_layout(projection)
    positions = SlotPositions(layout, (1, 1, 1, 1, 64))
    values = np.arange(1, 69, dtype=np.float32)[None, :]  # one time step, slot s holds s + 1
    grid = positions.scatter_values(values, grid=True)
    assert grid.shape == (1, layout.H, layout.W, 2)
    box = layout.by_path[NEWS]
    block = grid[0, box.row:box.row + box.h, box.col:box.col + box.w]
    assert np.array_equal(block.reshape(-1), np.arange(5, 69))
    cpi = layout.by_path[CPI]
    assert np.all(grid[0, cpi.row:cpi.row + cpi.h, cpi.col:cpi.col + cpi.w] == [3, 0])
    assert np.all(grid[0].reshape(-1, 2)[layout.position_field < 0] == 0)
    as_tensor = positions.scatter_values(torch.from_numpy(values), grid=True)
    assert torch.equal(as_tensor, torch.from_numpy(grid))
    presence = positions.scatter_fields(np.array([[True, False, True, False, True]]))
    assert presence.shape == (1, layout.num_positions)
    assert presence.sum() == sum(p.h * p.w for p in layout.placements if p.path in (SP500, CPI, NEWS))


def test_canvas_positions_cover_the_whole_time_axis(projection):
    canvas = build_canvas(observations(), projection, make_time_axis("2021-01-01", "2021-03-31", "weekly"),
                          train_end="2021-02-28")
    on_grid = canvas.to_positions(grid=True)
    assert on_grid.shape == (len(canvas.axis), canvas.layout.H, canvas.layout.W)  # 16 slots fit 32 positions
    news = canvas.layout.by_path[NEWS]
    row = on_grid[:, news.row:news.row + news.h, news.col:news.col + news.w].reshape(len(canvas.axis), -1)
    assert np.array_equal(row[:, :NEWS_DIM], canvas.values[:, canvas.offsets[4]:])


def test_save_and_load_round_trip_exactly(projection, tmp_path):
    canvas = build_canvas(observations(), projection, make_time_axis(START, END, "business"), train_end="2021-12-31",
                          transforms={CPI: "log_return", CLAIMS: "zscore"}, data_version="obs-abc123")
    manifest = canvas.save(tmp_path / "node")
    loaded = Canvas.load(tmp_path / "node")
    for name in ("values", "presence", "available_us", "loss_weight"):
        original, restored = getattr(canvas, name), getattr(loaded, name)
        assert original.dtype == restored.dtype and np.array_equal(original, restored), name
    assert loaded.layout == canvas.layout and loaded.axis == canvas.axis and loaded.slots == canvas.slots
    assert loaded.stats == canvas.stats and loaded.transforms == canvas.transforms
    assert (loaded.data_version, loaded.schema_hash) == ("obs-abc123", projection.schema_hash)
    assert manifest.name == "manifest.json" and (tmp_path / "node" / "tensors.safetensors").exists()
    assert loaded.loss_weight.tolist() == [1.0, 1.0, 2.0, 1.0, 0.5]


def test_bad_input_is_named_with_a_fix(projection):
    axis = make_time_axis("2021-01-01", "2021-01-10")
    with pytest.raises(ValueError, match=r"lack column\(s\) \['available_at'\]"):
        build_canvas(observations().drop("available_at"), projection, axis, train_end="2021-01-05")
    with pytest.raises(ValueError, match=r"unknown transform 'yoy' for field"):
        build_canvas(observations(), projection, axis, train_end="2021-01-05", transforms={CPI: "yoy"})
    with pytest.raises(ValueError, match=r"only the 'level' transform applies to vectors"):
        build_canvas(observations(), projection, axis, train_end="2021-01-05", transforms={NEWS: "diff"})
