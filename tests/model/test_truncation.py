"""The truncation test: forecasts from the masked whole record equal those from the data cut at each origin, and a
window that reads ahead of publication is caught."""

from __future__ import annotations

import numpy as np
import pytest

from gwm_model.inference import WorldModel
from gwm_model.inference.truncation import truncation_summary, truncation_test
from gwm_model.inference.world_model import WorldModel as WorldModelClass
from gwm_model.training.run import fit_model, save_fitted
from tests.model.test_base_forecast import _frame
from tests.model.test_baselines import PATHS, _canvas, _months
from tests.model.test_learning import MODEL, config, fake_embed

ORIGINS = np.array(["2011-03-10", "2012-06-10", "2013-11-10", "2014-07-10"], dtype="datetime64[us]")


@pytest.fixture(scope="module")
def checkpoint(world, tmp_path_factory):
    """A small trained model on two monthly fields, each month published on the 15th of the next (train_end 2009-12);
    at the origins (the 10th) the last month is still a late release."""
    canvas = _canvas(world, _frame(), _months("1995-01", 240), "2009-12-31", PATHS[:2])
    projection = world.project(PATHS[:2])
    fitted = fit_model(canvas, projection, MODEL, config(20, context=6, horizon=3, val_fraction=0.0),
                       embeddings=fake_embed)
    path = tmp_path_factory.mktemp("truncation")
    save_fitted(path, fitted, canvas, projection, fitted.trainer.config)
    return path


def test_the_masked_forecast_is_the_forecast_from_the_data_cut_at_the_origin(checkpoint):
    for gated in (False, True):
        table = truncation_test(WorldModel.load(checkpoint), _frame(), PATHS[:2], ORIGINS, gated=gated, samples=4)
        assert set(table["field_path"]) == set(PATHS[:2]) and table["as_of"].nunique() == ORIGINS.size
        assert (table["offset"] < 0).any() and (table["offset"] > 0).any()  # late releases and the steps ahead
        np.testing.assert_allclose(table["masked"], table["cut"], rtol=1e-5, atol=1e-5)
        summary = truncation_summary(table)
        assert (summary["one_path_only"] == 0).all() and (summary["scored"] > 0).all()
        np.testing.assert_allclose(summary["skill_masked"], summary["skill_cut"])


def test_a_window_that_reads_ahead_of_publication_is_caught(checkpoint, monkeypatch):
    """The masked path made to see two months past each origin (a leak); the cut path cannot, its data ends there."""
    window = WorldModelClass._window
    two_months_us = 61 * 86_400_000_000
    monkeypatch.setattr(WorldModelClass, "_window",
                        lambda self, canvas, anchor, as_of_us: window(self, canvas, anchor, as_of_us + two_months_us))
    table = truncation_test(WorldModel.load(checkpoint), _frame(), PATHS[:2], ORIGINS, gated=False, samples=4)
    summary = truncation_summary(table)
    assert (summary["one_path_only"] > 0).all()  # cells the leak shows in the masked path are hidden in the cut one
    both = table.dropna(subset=["masked", "cut"])
    assert both["difference"].abs().max() > 1e-3


def test_origins_after_the_data_or_none_at_all_are_refused(checkpoint):
    model = WorldModel.load(checkpoint)
    with pytest.raises(ValueError, match="no origins"):
        truncation_test(model, _frame(), PATHS[:2], [])
    with pytest.raises(ValueError, match="after the newest publication"):
        truncation_test(model, _frame(), PATHS[:2], ["2031-01-01"])
