"""A seeded synthetic world with known structure, on real schema paths, for tests and benchmarks.

Weekly and monthly series with publication delays, built so that a model that learns the structure
must beat simple baselines, and one that does not cannot:

- a monthly **macro surprise** (``core_cpi`` slot), AR(1), published 15 days after its month ends;
- weekly **equity returns** (``sp500`` slot) = ``beta`` x the latest *published* surprise + noise, so
  returns are predictable from macro data and not from their own past;
- a persistent two-state **regime** (never observed) that moves **credit spreads** (``baa_yield``)
  and **volatility** (``vix``) together;
- a **yield curve** whose two-year rate is a random walk and whose five- and ten-year rates are
  fixed linear functions of it plus small noise: hide the ten-year everywhere and it can be
  reconstructed from the other two (held-out-field imputation).

Values are published at the end of their week (Friday 22:00 UTC) except the macro surprise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

MACRO = "country_us.macro.inflation.core_cpi"
EQUITY = "financial.equities.indices.sp500"
SPREAD = "financial.credit.baa_yield"
VIX = "financial.equities.vix"
TWO_YEAR = "financial.yield_curves.two_year"
FIVE_YEAR = "financial.yield_curves.five_year"
TEN_YEAR = "financial.yield_curves.ten_year"
PATHS = (MACRO, EQUITY, SPREAD, VIX, TWO_YEAR, FIVE_YEAR, TEN_YEAR)
INCLUDE = ("financial", "country_us.macro")  # whole subtrees: the model sees the real tree around the data


@dataclass(frozen=True)
class SyntheticWorld:
    observations: pl.DataFrame
    start: str
    end: str
    train_end: str
    regime: np.ndarray   # weekly hidden state (0/1), for inspection
    beta: float


def _frame(path: str, ts: np.ndarray, available: np.ndarray, value: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({"field_path": [path] * ts.size, "ts": ts.astype("datetime64[D]"),
                         "available_at": available.astype("datetime64[us]"), "value": value.astype(np.float64),
                         "source": ["synthetic"] * ts.size})


def synthetic_world(seed: int = 0, weeks: int = 620, start: str = "2000-01-03", beta: float = 1.0,
                    return_noise: float = 0.3, train_share: float = 0.75) -> SyntheticWorld:
    """Observations of the world described in the module docstring (``weeks`` Monday-dated weeks)."""
    rng = np.random.default_rng(seed)
    mondays = np.datetime64(start, "D") + 7 * np.arange(weeks)
    published_weekly = (mondays + 4).astype("datetime64[us]") + np.timedelta64(22, "h")

    months = np.arange(mondays[0].astype("datetime64[M]") - 1, mondays[-1].astype("datetime64[M]") + 1)
    surprise = np.zeros(months.size)
    for i in range(1, months.size):
        surprise[i] = 0.6 * surprise[i - 1] + rng.normal(0, 1.0)
    month_published = (months + 1).astype("datetime64[D]") + 14  # mid next month
    # the surprise a trader knows at the start of each week: latest month published by then
    known = np.searchsorted(month_published, mondays, side="right") - 1
    latest = np.where(known >= 0, surprise[np.clip(known, 0, None)], 0.0)
    returns = beta * latest + rng.normal(0, return_noise, weeks)

    regime = np.zeros(weeks, dtype=np.int64)
    for i in range(1, weeks):
        regime[i] = regime[i - 1] if rng.random() < 0.97 else 1 - regime[i - 1]
    noise = np.zeros(weeks)
    for i in range(1, weeks):
        noise[i] = 0.8 * noise[i - 1] + rng.normal(0, 0.1)
    spread = 2.0 + 1.5 * regime + noise
    vix = 15.0 + 10.0 * regime + rng.normal(0, 1.0, weeks)

    two = 3.0 + np.cumsum(rng.normal(0, 0.1, weeks))
    five = 0.5 + 0.85 * two + rng.normal(0, 0.03, weeks)
    ten = 1.0 + 0.7 * two + rng.normal(0, 0.03, weeks)

    frames = [_frame(MACRO, months.astype("datetime64[D]"), month_published.astype("datetime64[us]")
                     + np.timedelta64(13, "h"), surprise)]
    for path, values in ((EQUITY, returns), (SPREAD, spread), (VIX, vix), (TWO_YEAR, two), (FIVE_YEAR, five),
                         (TEN_YEAR, ten)):
        frames.append(_frame(path, mondays, published_weekly, values))
    train_end = str(mondays[int(weeks * train_share)])
    end = str(mondays[-1] + 6)
    return SyntheticWorld(pl.concat(frames), str(mondays[0]), end, train_end, regime, beta)
