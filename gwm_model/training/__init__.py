"""Training: objectives (masked, diffusion), ``TrainConfig``, the ``Trainer`` loop, loggers, window ordering,
checkpoints, and :func:`gwm_model.training.run.train_model` (train, evaluate, checkpoint one canvas)."""
