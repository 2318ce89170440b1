"""Build one curriculum node's canvas from the warehouse (no Dagster here; the asset factory calls it).

1. Read the node's observations (its projection's fields) and check there is something to build:
   a node whose fields have no data at all is an error when its declared sources have delivered
   data elsewhere (a mapping problem), and an all-absent canvas, said so in the manifest, when its
   sources have delivered nothing yet (offline, or ``data_sources: []``).
2. The time axis: the node's frequency from ``canvas.start`` (never before its first observation)
   to ``canvas.end`` (default: its last observation); the training split at ``train_fraction``.
3. The data version: a hash of the observations used and the settings; when it equals the version
   of the canvas already on disk, the files are kept as they are.
Errors are raised before any file is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from gwm_model.canvas import Canvas, build_canvas, make_time_axis
from gwm_model.canvas.canvas import MANIFEST_FILE
from gwm_model.curriculum import CurriculumError, CurriculumNode
from gwm_model.schema import WorldSchema

EMBEDDING_UNIT, EMBEDDING_SLOTS = "embedding", 384
CANVASES_DDL = """CREATE TABLE IF NOT EXISTS canvases (
    node VARCHAR PRIMARY KEY, tier INTEGER, n_fields INTEGER, n_fields_with_data INTEGER, presence_share DOUBLE,
    n_steps INTEGER, frequency VARCHAR, start_date DATE, end_date DATE, train_end DATE, n_observations BIGINT,
    data_version VARCHAR, schema_hash VARCHAR, layout_hash VARCHAR, path VARCHAR, note VARCHAR,
    built_at TIMESTAMP)"""


@dataclass
class NodeCanvas:
    node: CurriculumNode
    canvas: Canvas
    path: Path
    n_observations: int
    rebuilt: bool
    note: str

    @property
    def fields_with_data(self) -> int:
        return int(self.canvas.presence.any(axis=0).sum())

    @property
    def presence_share(self) -> float:
        return float(self.canvas.presence.mean()) if self.canvas.presence.size else 0.0


def _select_node_fields(conn: duckdb.DuckDBPyConnection, paths: tuple[str, ...]) -> None:
    """Temp table ``node_fields``: the fields of the node's projection, for joins with observations."""
    conn.execute("CREATE OR REPLACE TEMP TABLE node_fields AS SELECT unnest(?) AS field_path", [list(paths)])


def _axis_bounds(node: CurriculumNode, first: dt.date | None, last: dt.date | None,
                 overall: tuple[dt.date | None, dt.date | None]) -> tuple[dt.date, dt.date]:
    settings = node.canvas
    first, last = (first, last) if first else overall
    if first is None and (settings.start is None or settings.end is None):
        raise CurriculumError(f"node '{node.name}': the warehouse has no observations, so its time axis has no "
                              "length. Fix: materialize the sources and observations first, or set canvas start "
                              "and end")
    start = max(d for d in (settings.start, first) if d is not None)
    end = settings.end or last
    if end < start:
        raise CurriculumError(f"node '{node.name}': its time axis is empty ({start} .. {end}: the data ends before "
                              "canvas.start). Fix: move canvas.start earlier or set canvas.end later")
    return start, end


def data_version(conn: duckdb.DuckDBPyConnection, node: CurriculumNode, schema_hash: str, start: dt.date,
                 end: dt.date) -> tuple[str, int]:
    digest, n = conn.execute("""
        SELECT coalesce(md5(string_agg(field_path || '|' || ts || '|' || available_at || '|' || value || '|'
                                       || coalesce(md5(CAST(vector AS VARCHAR)), ''), ','
                                       ORDER BY field_path, ts, source)), ''), count(*)
        FROM observations JOIN node_fields USING (field_path) WHERE ts BETWEEN ? AND ?""", [start, end]).fetchone()
    settings = json.dumps({"canvas": node.canvas.to_dict(), "include": node.include, "exclude": node.exclude,
                           "entities": node.entities, "schema": schema_hash}, sort_keys=True)
    return hashlib.sha256(f"{digest}|{settings}".encode()).hexdigest()[:16], n


def _stored_version(directory: Path) -> str | None:
    manifest = directory / MANIFEST_FILE
    if not manifest.exists():
        return None
    return json.loads(manifest.read_text()).get("data_version")


def build_node_canvas(conn: duckdb.DuckDBPyConnection, node: CurriculumNode, schema: WorldSchema,
                      out_root: Path) -> NodeCanvas:
    """Build (or keep) ``node``'s canvas under ``out_root/<node>/``; see the module docstring."""
    projection = node.projection(schema)
    _select_node_fields(conn, projection.paths)
    first, last = conn.execute("SELECT min(ts), max(ts) FROM observations JOIN node_fields USING (field_path)"
                               ).fetchone()
    delivered = {r[0] for r in conn.execute("SELECT DISTINCT source FROM observations").fetchall()}
    note = ""
    if first is None:
        productive = sorted(set(node.data_sources) & delivered)
        if productive:
            raise CurriculumError(
                f"node '{node.name}': none of its {len(projection)} fields has data, although its sources "
                f"{productive} delivered observations for other fields. Fix: map those sources' series onto the "
                f"node's fields (gwm_assets/sources/catalog.yaml or a tabular mapping) or correct its include "
                f"{list(node.include)}")
        note = ("no data yet: " + (f"its sources {list(node.data_sources)} have delivered nothing (live refresh "
                                   "off?)" if node.data_sources else "it declares no data sources"))
    overall = conn.execute("SELECT min(ts), max(ts) FROM observations").fetchone()
    start, end = _axis_bounds(node, first, last, overall)
    axis = make_time_axis(start, end, node.canvas.frequency)
    if len(axis) < 2:
        raise CurriculumError(f"node '{node.name}': its time axis {start} .. {end} at {node.canvas.frequency} "
                              "frequency has fewer than 2 steps. Fix: widen canvas start/end or use a finer frequency")
    version, n_obs = data_version(conn, node, projection.schema_hash, start, end)
    directory = Path(out_root) / node.name
    if _stored_version(directory) == version:
        return NodeCanvas(node, Canvas.load(directory), directory, n_obs, rebuilt=False, note=note)
    train_end = axis.starts[int(len(axis) * node.canvas.train_fraction) - 1].astype(dt.date)
    table = conn.sql("""SELECT field_path, ts, available_at, value, vector, source, source_key
                        FROM observations JOIN node_fields USING (field_path) WHERE ts BETWEEN ? AND ?""",
                     params=[start, end]).to_arrow_table()
    vectors = {f.path: EMBEDDING_SLOTS for f in projection.fields if f.unit == EMBEDDING_UNIT}
    canvas = build_canvas(table, projection, axis, train_end, vector_slots=vectors, data_version=version)
    manifest = canvas.save(directory)
    doc = json.loads(manifest.read_text())
    doc["node"] = {"name": node.name, "tier": node.tier, "parents": list(node.parents), "include": list(node.include),
                   "data_sources": list(node.data_sources), "n_observations": n_obs, "note": note or None}
    manifest.write_text(json.dumps(doc, indent=1))
    return NodeCanvas(node, canvas, directory, n_obs, rebuilt=True, note=note)


def record_canvas(conn: duckdb.DuckDBPyConnection, built: NodeCanvas, now: dt.datetime) -> None:
    """Upsert the node's row in ``canvases``; call inside a transaction."""
    c = built.canvas
    conn.execute(CANVASES_DDL)
    conn.execute("DELETE FROM canvases WHERE node = ?", [built.node.name])
    conn.execute("INSERT INTO canvases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        built.node.name, built.node.tier, len(c.paths), built.fields_with_data, built.presence_share,
        c.num_steps, c.axis.frequency, c.axis.starts[0].astype(dt.date), c.axis.ends[-1].astype(dt.date),
        c.stats.train_end, built.n_observations, c.data_version, c.schema_hash, c.layout.layout_hash,
        str(built.path), built.note or None, now])


def presence_png(built: NodeCanvas) -> bytes:
    """Fields with data x time steps: where ground truth exists on the node's canvas."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = built.canvas
    observed = np.flatnonzero(c.presence.any(axis=0))
    fig, ax = plt.subplots(figsize=(11, 2 + 0.16 * max(len(observed), 1)))
    if observed.size:
        ax.imshow(c.presence[:, observed].T, aspect="auto", interpolation="nearest", cmap="Greens")
        ax.set_yticks(range(observed.size), [c.paths[i] for i in observed], fontsize=6)
        step = max(1, c.num_steps // 12)
        ax.set_xticks(range(0, c.num_steps, step), [str(d)[:7] for d in c.axis.starts[::step]], fontsize=7,
                      rotation=45)
    else:
        ax.text(0.5, 0.5, f"no field of {built.node.name} has data yet", ha="center", va="center")
        ax.set_axis_off()
    ax.set_title(f"{built.node.name}: presence of {observed.size} of {len(c.paths)} fields "
                 f"({c.axis.frequency}, {c.num_steps} steps)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
