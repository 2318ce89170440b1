"""Shared fixtures: the packaged world, a small schema file to break, temp warehouses."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from gwm_model.schema import WorldSchema, default_world

REPO = Path(__file__).resolve().parent.parent

# A materialization of the whole graph embeds each text corpus's first 200 posts, not all 20,000 (80 s of
# MiniLM on two cores); tests of the text path set their own limit.
os.environ.setdefault("GWM_CORPUS_LIMIT", "200")

MINI_SCHEMA = """\
version: 1
units:
  index: an index level
  pct_yoy: percent change on a year earlier
  latent: model-internal quantity
templates:
  Country:
    prefix: country_
    about: a national economy
    gdp: {size: 1x2, period: quarterly, unit: index, about: real output}
    prices:
      about: price level dynamics
      cpi: {size: 1x2, period: monthly, unit: pct_yoy, weight: 2.0, about: consumer prices}
world:
  markets:
    about: financial markets
    equity: {size: 1x1, period: tick, unit: index, about: a stock index}
    vol: {size: 2x2, period: daily, unit: index, input_only: true, about: implied volatility}
  country_us: {entity: Country, label: United States}
"""


@pytest.fixture(scope="session")
def world() -> WorldSchema:
    return default_world()


@pytest.fixture
def mini_schema(tmp_path: Path) -> Path:
    path = tmp_path / "mini.yaml"
    path.write_text(MINI_SCHEMA)
    return path


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    """A fresh DAGSTER_HOME with the project's instance settings (pools)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    return home
