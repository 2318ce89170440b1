"""Field coverage you can query: the ``field_coverage`` and ``layer_coverage`` views of the warehouse.

``field_coverage``: one row per world field (coarse summary fields included, marked ``kind``), with
its layer, sources, observation count, first/last date, declared period (schema) vs observed spacing
(median days between dates), staleness and the share of the canvas time axis it covers. The time
axis is the span of all observations; a field covers an axis step (a month for fields observed
monthly or faster, a quarter, a year for slower ones) when it has a value dated in it.

``layer_coverage``: one row per top-level layer: leaf fields with any data / all leaf fields.
"""

from __future__ import annotations

import duckdb

FIELD_COVERAGE = """
CREATE OR REPLACE VIEW field_coverage AS
WITH axis AS (SELECT min(ts) AS axis_start, max(ts) AS axis_end FROM observations),
dates AS (SELECT DISTINCT field_path, ts FROM observations),
spacing AS (
    SELECT field_path, median(gap) AS observed_period_days
    FROM (SELECT field_path, date_diff('day', lag(ts) OVER (PARTITION BY field_path ORDER BY ts), ts) AS gap
          FROM dates)
    WHERE gap IS NOT NULL GROUP BY field_path),
per_field AS (
    SELECT field_path, list(DISTINCT source ORDER BY source) AS sources, count(*) AS n_obs,
           min(ts) AS first_ts, max(ts) AS last_ts, max(available_at) AS last_available_at
    FROM observations GROUP BY field_path),
grain AS (
    SELECT p.field_path, CASE WHEN coalesce(s.observed_period_days, 1) <= 31 THEN 'month'
                              WHEN s.observed_period_days <= 92 THEN 'quarter' ELSE 'year' END AS axis_step
    FROM per_field p LEFT JOIN spacing s USING (field_path)),
steps AS (
    SELECT d.field_path, count(DISTINCT date_trunc(g.axis_step, d.ts)) AS steps_covered,
           any_value(g.axis_step) AS axis_step
    FROM dates d JOIN grain g USING (field_path) GROUP BY d.field_path)
SELECT f.path AS field_path, f.layer, f.kind, f.unit, f.entity,
       coalesce(p.sources, []::VARCHAR[]) AS sources,
       coalesce(p.n_obs, 0) AS n_obs, p.first_ts, p.last_ts, p.last_available_at,
       f.period AS declared_period, f.period_days AS declared_period_days,
       s.observed_period_days,
       date_diff('day', p.last_ts, current_date) AS staleness_days,
       -- stale: nothing new for three declared periods (or observed spacings, whichever is longer) plus 60 days
       coalesce(date_diff('day', p.last_ts, current_date)
                > 3 * greatest(f.period_days, coalesce(s.observed_period_days, 0), 1) + 60, false) AS is_stale,
       st.axis_step,
       CASE WHEN p.n_obs IS NULL THEN 0.0
            ELSE least(1.0, st.steps_covered / greatest(1, date_diff(st.axis_step,
                          date_trunc(st.axis_step, a.axis_start), date_trunc(st.axis_step, a.axis_end)) + 1))
       END AS axis_share
FROM fields f
CROSS JOIN axis a
LEFT JOIN per_field p ON p.field_path = f.path
LEFT JOIN spacing s ON s.field_path = f.path
LEFT JOIN steps st ON st.field_path = f.path
"""

LAYER_COVERAGE = """
CREATE OR REPLACE VIEW layer_coverage AS
SELECT layer,
       count(*) FILTER (n_obs > 0) AS fields_with_data,
       count(*) AS fields,
       round(100.0 * count(*) FILTER (n_obs > 0) / count(*), 1) AS pct_fields_with_data,
       sum(n_obs) AS n_obs,
       min(first_ts) AS first_ts,
       max(last_ts) AS last_ts,
       count(*) FILTER (is_stale) AS stale_fields,
       round(avg(axis_share), 3) AS mean_axis_share
FROM field_coverage WHERE kind = 'leaf'
GROUP BY layer ORDER BY layer
"""


def create_coverage_views(conn: duckdb.DuckDBPyConnection) -> None:
    """(Re)create both views; needs ``fields`` and ``observations``. Call inside a transaction."""
    conn.execute(FIELD_COVERAGE)
    conn.execute(LAYER_COVERAGE)
