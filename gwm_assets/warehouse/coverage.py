"""Field coverage you can query and see: the ``field_coverage`` and ``layer_coverage`` views and a heatmap.

``field_coverage``: one row per world field (coarse summary fields included, marked ``kind``), with
its layer, sources, observation count, first/last date, declared period (schema) vs observed spacing
(median days between dates), staleness and the share of the canvas time axis it covers. The time
axis is the span of all observations; a field covers an axis step (a month for fields observed
monthly or faster, a quarter, a year for slower ones) when it has a value dated in it.

``layer_coverage``: one row per top-level layer: leaf fields with any data / all leaf fields.
"""

from __future__ import annotations

import io
from datetime import date

import duckdb
import numpy as np

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


def coverage_by_year(conn: duckdb.DuckDBPyConnection, prefix: str = "") -> tuple[list[str], list[int], np.ndarray]:
    """(fields with data under ``prefix``, years, share of each year's months with a value per field)."""
    rows = conn.execute("""
        SELECT field_path, year(ts) AS y, count(DISTINCT month(ts)) / 12.0 AS share
        FROM observations WHERE field_path LIKE ? || '%' GROUP BY ALL""", [prefix]).fetchall()
    fields = sorted({r[0] for r in rows})
    if not fields:
        return [], [], np.zeros((0, 0))
    years = list(range(min(r[1] for r in rows), max(r[1] for r in rows) + 1))
    grid = np.zeros((len(fields), len(years)))
    f_index, y_index = {f: i for i, f in enumerate(fields)}, {y: i for i, y in enumerate(years)}
    for field, year, share in rows:
        grid[f_index[field], y_index[year]] = share
    return fields, years, grid


def layer_by_year(conn: duckdb.DuckDBPyConnection) -> tuple[list[str], list[int], np.ndarray]:
    """(layers, years, share of each layer's leaf fields with any value in that year)."""
    layers = [r[0] for r in conn.execute("SELECT DISTINCT layer FROM fields ORDER BY layer").fetchall()]
    rows = conn.execute("""
        SELECT f.layer, year(o.ts), count(DISTINCT o.field_path) / any_value(n.leaves)
        FROM observations o JOIN fields f ON f.path = o.field_path
        JOIN (SELECT layer, count(*) AS leaves FROM fields WHERE kind = 'leaf' GROUP BY layer) n ON n.layer = f.layer
        GROUP BY ALL""").fetchall()
    if not rows:
        return layers, [], np.zeros((len(layers), 0))
    years = list(range(min(r[1] for r in rows), max(r[1] for r in rows) + 1))
    grid = np.zeros((len(layers), len(years)))
    for layer, year, share in rows:
        grid[layers.index(layer), years.index(year)] = share
    return layers, years, grid


def render_heatmap_png(conn: duckdb.DuckDBPyConnection, title_date: date | None = None) -> bytes:
    """Two panels: layers x years (share of leaf fields observed) and fields x years (share of months)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers, layer_years, layer_grid = layer_by_year(conn)
    fields, years, grid = coverage_by_year(conn)
    height = 3 + 0.18 * (len(layers) + len(fields))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, height),
                                      gridspec_kw={"height_ratios": [max(len(layers), 1), max(len(fields), 1)]})
    for ax, labels, cols, data, what in ((top, layers, layer_years, layer_grid, "share of the layer's fields"),
                                         (bottom, fields, years, grid, "share of months with a value")):
        if data.size == 0:
            ax.text(0.5, 0.5, "no observations", ha="center", va="center")
            ax.set_axis_off()
            continue
        image = ax.imshow(data, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_yticks(range(len(labels)), labels, fontsize=6)
        step = max(1, len(cols) // 20)
        ax.set_xticks(range(0, len(cols), step), [str(y) for y in cols[::step]], fontsize=7, rotation=45)
        fig.colorbar(image, ax=ax, label=what, fraction=0.02)
    top.set_title(f"gwm coverage by layer and year{f' ({title_date})' if title_date else ''}")
    bottom.set_title("fields with data by year")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


BLOCKS = " ▁▂▃▄▅▆▇█"


def text_heatmap(conn: duckdb.DuckDBPyConnection, prefix: str = "", width: int = 60) -> str:
    """Fields x years as one row of block characters per field (for ``gwm coverage``)."""
    fields, years, grid = coverage_by_year(conn, prefix)
    if not fields:
        return f"no observations under '{prefix or '*'}'"
    if len(years) > width:  # fold years into buckets so each row fits
        edges = np.linspace(0, len(years), width + 1).astype(int)
        grid = np.stack([grid[:, a:b].mean(axis=1) for a, b in zip(edges[:-1], edges[1:], strict=True)], axis=1)
    name_w = max(len(f) for f in fields)
    lines = [f"{'field':<{name_w}}  {years[0]}{' ' * max(1, grid.shape[1] - 8)}{years[-1]}"]
    for field, row in zip(fields, grid, strict=True):
        lines.append(f"{field:<{name_w}}  " + "".join(BLOCKS[int(round(v * (len(BLOCKS) - 1)))] for v in row))
    return "\n".join(lines)
