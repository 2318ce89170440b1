"""Field coverage: the ``coverage`` asset (views ``field_coverage`` and ``layer_coverage``) and its heatmaps.

The views' SQL is the warehouse's (``warehouse/coverage_views.py``, also recreated over the Parquet export);
this folder owns the asset and the pictures (``heatmap``: PNG metadata, ``gwm coverage``'s text).

May import: ``observations``, ``warehouse``, ``resources``, ``automation``.
"""
