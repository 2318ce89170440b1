"""Inference on a trained checkpoint: :class:`WorldModel` (load, observe, predict, forecast) and the
observation frames it reads (:mod:`gwm_model.inference.frames`)."""

from gwm_model.inference.frames import ObservationsInputError, observations_table, read_warehouse_observations
from gwm_model.inference.world_model import FORECAST_COLUMNS, ForecastRequestError, WindowPrediction, WorldModel

__all__ = ["FORECAST_COLUMNS", "ForecastRequestError", "ObservationsInputError", "WindowPrediction", "WorldModel",
           "observations_table", "read_warehouse_observations"]
