"""Validation machinery shared by the folders that declare checks: expectation suites and their runner.

Owns: the suite format (``suite``: YAML expectations, blocking or not), the Great Expectations runner
(``gx_runner``: GX is imported lazily, inside :func:`validate` only), plausible value ranges per field
(``ranges`` and ``plausible_ranges.yaml``) and the conversion of an outcome to a Dagster check result
(``results``). The checks themselves live with their assets: ``sources/checks.py``, ``observations/checks.py``.

May import: ``gwm_assets.warehouse`` and ``gwm_model``.
"""
