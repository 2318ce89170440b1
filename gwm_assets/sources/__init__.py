"""Sources: one module per provider, their raw tables, and the Dagster assets, checks and automation of them.

Owns: fetchers that take an injected HTTP client and return source-native Arrow tables (``fred``, ``yahoo``,
``pmi``, ``earnings``, ``news``, ``tabular``), the embedded default (``bundled`` for the Python packages,
``bundled_rdatasets`` with ``rdatasets_frames`` and ``rdatasets_derived`` for the R data sets,
``bundled_calendar`` for the election calendar and the NBER chronology, ``text_corpus`` for dated posts
through the news path, with ``embedding_cache``), the mapping catalog (``catalog``), the raw tables' shapes
(``raw_tables``), one refresh of one source (``refresh``), the daily news aggregate per stream
(``news_daily``), freshness (``freshness``); and the Dagster side: ``assets`` (group
``sources``), ``checks`` (raw suites in ``expectations/``, freshness) and ``automation`` (refresh jobs,
schedules, sensors).

May import: ``warehouse``, ``resources``, ``validation``, ``automation`` and ``gwm_model``. A source module
knows its API and its mapping and nothing about canvases.
"""

