"""Operator tools, above the definitions: the ``gwm`` CLI, the UI launcher, the deployment preflight.

Owns: ``cli`` (``gwm sql``, ``gwm fields``, ``gwm coverage``, ``gwm warehouse export``, ``gwm ui``; starts without
importing Dagster), ``ui_launcher`` (checks before ``dagster dev``) and ``preflight``
(``python -m gwm_assets.ops.preflight deploy/k8s``: validates the cluster files against the Definitions).

May import: anything in gwm_assets, including ``definitions``; nothing imports this folder.
"""
