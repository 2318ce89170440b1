"""The Dagster resources of the code location, and the settings they read from the environment.

Owns: ``WarehouseResource`` (where the warehouse is, lock waiting, Parquet publishing), ``WorldSchemaResource``,
``SourceSettings`` (live switches and keys; :meth:`SourceSettings.offline_reason` is the one place that decides
whether a source is live), ``TrainingResource`` (profile, threads, DDP), ``paths`` (where files live) and
``deployment`` (the executor ``GWM_EXECUTOR`` selects and what a training step asks of a cluster).

May import: ``gwm_assets.warehouse`` and ``gwm_model``. This ``__init__`` imports nothing, so ``paths`` loads
without Dagster (the CLI needs that): import each resource from its module.
"""
