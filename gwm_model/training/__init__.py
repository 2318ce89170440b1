"""Training: objectives (masked, diffusion), ``TrainConfig``, the ``Trainer`` loop, loggers, window ordering,
checkpoints, DDP, and :mod:`gwm_model.training.run` (``fit_model``: build and train one model on one canvas;
``save_fitted``: its checkpoint).

May import :mod:`gwm_model.schema`, :mod:`gwm_model.canvas` and :mod:`gwm_model.nn`; never evaluation or
curriculum: scoring a trained model is a separate step its caller runs
(:func:`gwm_model.evaluation.train_and_evaluate.train_and_evaluate` chains the two for one canvas)."""
