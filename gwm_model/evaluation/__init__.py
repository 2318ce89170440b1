"""Evaluation: baselines that forecast the cells a canvas model is scored on, and scores with skill and DM tests.

Also :func:`~gwm_model.evaluation.model_eval.evaluate_fitted` (a trained model on its test windows) and
:func:`~gwm_model.evaluation.train_and_evaluate.train_and_evaluate` (train, evaluate, checkpoint one canvas).
May import :mod:`gwm_model.schema`, :mod:`gwm_model.canvas`, :mod:`gwm_model.nn` and
:mod:`gwm_model.training`; never curriculum or inference.

Baselines (:mod:`gwm_model.evaluation.baselines`) return ``(n_anchors, L, F)`` arrays aligned with
``CanvasWindows``; :func:`window_cells` gives the truth and the hidden cells to score them on, and
:func:`score_forecasts` compares models with a reference. Importing this package does not import
statsmodels or torch; the dynamic factor model loads statsmodels when it runs.
"""

from __future__ import annotations

from gwm_model.evaluation.baselines import (
    ARFit,
    DFMFit,
    WindowCells,
    ar_forecast,
    baseline_forecasts,
    dfm_forecast,
    fit_ar,
    fit_dfm,
    mean_forecast,
    persistence_forecast,
    scalar_values,
    step_offsets,
    visible_from,
    window_cells,
    window_steps,
)
from gwm_model.evaluation.scores import diebold_mariano, imputation_scores, score_forecasts

__all__ = [
    "ARFit", "DFMFit", "WindowCells", "ar_forecast", "baseline_forecasts", "dfm_forecast", "diebold_mariano",
    "fit_ar", "fit_dfm", "imputation_scores", "mean_forecast", "persistence_forecast", "scalar_values",
    "score_forecasts", "step_offsets", "visible_from", "window_cells", "window_steps",
]
