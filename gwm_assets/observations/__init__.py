"""The mapping catalog and the long ``observations`` table: their assets, build, quarantine and checks.

Owns: ``build`` (incremental build of ``observations`` from the raw tables through the catalog, with
point-in-time ``available_at``), ``quarantine`` (row-level expectations that withhold bad candidate rows,
and their release), ``assets`` (``source_series`` and ``observations``, group ``warehouse``) and ``checks``
(the suite in ``expectations/observations.yaml``, blocking ones stop the canvases; ``quarantine_empty``).

May import: ``sources``, ``fields``, ``warehouse``, ``resources``, ``validation``, ``automation``, ``gwm_model``.
"""
