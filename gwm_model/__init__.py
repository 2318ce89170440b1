"""gwm_model: the pure library of gwm (schema, canvas layout, model, training). No Dagster here.

Layers, lowest first; a module imports only its own layer and those below it, and no two modules import
each other, directly or round a longer loop (imports inside functions and under ``TYPE_CHECKING`` count):

1. ``schema``: the world field tree and projections;
2. ``canvas``: fields laid out on the canvas, and the tensors built from observations;
3. ``nn``: the networks;
4. ``training``: objectives, the trainer, checkpoints, ``fit_model``;
5. ``evaluation``: baselines and scores of trained models;
6. ``curriculum`` (the DAG of nodes, trained and scored one by one) and ``inference`` (``WorldModel``),
   neither importing the other.

``synthetic.py`` (a seeded synthetic world for tests and benchmarks) imports nothing of gwm_model.
"""

__version__ = "0.1.0"
