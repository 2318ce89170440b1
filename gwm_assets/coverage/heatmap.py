"""Field coverage you can see: per field and per layer, the share of each year covered, as a PNG or as text.

Both read the ``field_coverage`` view (``gwm_assets/warehouse/coverage_views.py``) and ``observations``.
"""

from __future__ import annotations

import io
from datetime import date

import duckdb
import numpy as np


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
