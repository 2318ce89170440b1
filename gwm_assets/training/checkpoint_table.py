"""The ``checkpoints`` and ``forecast_scores`` tables: each curriculum node's latest checkpoint and its scores,
read from its manifest.

The checkpoint files are the truth (a manifest is enough to reload and continue); the rows are their
index for SQL: ``gwm sql "select node, steps, median_group_skill, groups_worse_than_naive from checkpoints"``.
``forecast_scores`` holds one row per node, field group, horizon and forecaster (``model``,
``persistence``, ``climatology``, ``naive``, ``ar``, ``dfm``) of the test-period evaluation: cells, MSE,
MAE, skill against the naive forecast with its Diebold-Mariano test, and skill against persistence.
A warehouse written by an older version gains the new columns (``ALTER TABLE``); no row is lost.

View ``integration_gain``: for each tier-0 specialist, ``full_integration``'s test skill minus the
specialist's on the field groups both scored (>= 100 cells each, pooled horizon): the reason the DAG
exists, per node. The two are scored on their own canvases' test windows, so the cells of a group are
the same fields over the same test period but may differ where the canvases' spans differ.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

CHECKPOINT_COLUMNS = {
    "node": "VARCHAR PRIMARY KEY", "tier": "INTEGER", "parents": "VARCHAR[]", "profile": "VARCHAR",
    "trained": "BOOLEAN", "steps": "INTEGER", "val_loss": "DOUBLE", "val_skill": "DOUBLE", "test_skill": "DOUBLE",
    "dm_pvalue": "DOUBLE", "median_group_skill": "DOUBLE", "groups_scored": "INTEGER",
    "groups_worse_than_naive": "INTEGER", "groups_beating_ar": "INTEGER", "forecastable_groups": "VARCHAR[]",
    "forecastable_group_skill": "DOUBLE", "forecastable_classical_skill": "DOUBLE", "score_note": "VARCHAR",
    "merge_method": "VARCHAR", "worst_surviving_share": "DOUBLE",
    "worst_forecast_surviving_share": "DOUBLE", "worst_ensemble_gap": "DOUBLE",
    "max_barrier": "DOUBLE", "worst_child_minus_parent": "DOUBLE", "trainable_fraction": "DOUBLE",
    "parameters": "BIGINT", "n_model_fields": "INTEGER", "weights_sha256": "VARCHAR", "inputs_fingerprint": "VARCHAR",
    "canvas_data_version": "VARCHAR", "schema_hash": "VARCHAR", "code_version": "VARCHAR", "seconds": "DOUBLE",
    "path": "VARCHAR", "note": "VARCHAR", "trained_at": "TIMESTAMP"}
SCORE_COLUMNS = {
    "node": "VARCHAR NOT NULL", "field_group": "VARCHAR NOT NULL", "horizon": "VARCHAR NOT NULL",
    "forecaster": "VARCHAR NOT NULL", "n_cells": "INTEGER", "mse": "DOUBLE", "mae": "DOUBLE", "skill": "DOUBLE",
    "skill_persistence": "DOUBLE", "dm_stat": "DOUBLE", "dm_pvalue": "DOUBLE", "data_version": "VARCHAR",
    "code_version": "VARCHAR", "weights_sha256": "VARCHAR"}


INTEGRATION_GAIN = """
CREATE OR REPLACE VIEW integration_gain AS
WITH scored AS (
    SELECT node, field_group, skill FROM forecast_scores
    WHERE forecaster = 'model' AND horizon = 'all' AND field_group <> 'all' AND n_cells >= 100
      AND isfinite(skill))
SELECT s.node AS tier0_node, count(*) AS shared_groups, median(f.skill - s.skill) AS median_gain,
       min(f.skill - s.skill) AS worst_gain, count(*) FILTER (f.skill > s.skill) AS groups_improved,
       median(s.skill) AS node_skill, median(f.skill) AS full_integration_skill,
       list(s.field_group ORDER BY s.field_group) AS field_groups
FROM scored s
JOIN scored f ON f.node = 'full_integration' AND f.field_group = s.field_group
JOIN checkpoints c ON c.node = s.node AND c.tier = 0
GROUP BY s.node
"""


def _ensure(conn: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str], key: str = "") -> None:
    body = ", ".join(f"{c} {t}" for c, t in columns.items()) + (f", PRIMARY KEY ({key})" if key else "")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({body})")
    have = {r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                                       [table]).fetchall()}
    for column, kind in columns.items():
        if column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind.replace(' NOT NULL', '')}")


def checkpoint_row(manifest: dict[str, Any], path: Path, now: dt.datetime) -> dict[str, object]:
    node = manifest["node"]
    metrics = manifest.get("metrics", {})
    merge = manifest.get("merge", {})
    quality = merge.get("quality") or {}
    after = merge.get("child_vs_parents") or {}
    lineage = manifest.get("lineage", {})
    return {
        "node": node["name"], "tier": node["tier"], "parents": list(node["parents"]),
        "profile": manifest.get("profile"), "trained": bool(manifest.get("steps")),
        "steps": int(manifest.get("steps") or 0), "val_loss": metrics.get("val_loss"),
        "val_skill": metrics.get("val_skill"), "test_skill": metrics.get("test_skill"),
        "dm_pvalue": metrics.get("dm_pvalue"), "median_group_skill": metrics.get("median_group_skill"),
        "groups_scored": metrics.get("groups_scored"),
        "groups_worse_than_naive": metrics.get("groups_worse_than_naive"),
        "groups_beating_ar": metrics.get("groups_beating_ar"),
        "forecastable_groups": metrics.get("forecastable_groups"),
        "forecastable_group_skill": metrics.get("forecastable_group_skill"),
        "forecastable_classical_skill": metrics.get("forecastable_classical_skill"),
        "score_note": metrics.get("score_note"),
        "merge_method": merge.get("report", {}).get("method"),
        "worst_surviving_share": quality.get("worst_surviving_share"),
        "worst_forecast_surviving_share": quality.get("worst_forecast_surviving_share"),
        "worst_ensemble_gap": quality.get("worst_ensemble_gap"), "max_barrier": quality.get("max_barrier"),
        "worst_child_minus_parent": after.get("worst_child_minus_parent"),
        "trainable_fraction": manifest.get("trainable_fraction"),
        "parameters": manifest.get("parameters", {}).get("total"),
        "n_model_fields": len(manifest.get("plan", {}).get("fields", [])),
        "weights_sha256": manifest.get("weights_sha256"), "inputs_fingerprint": manifest.get("inputs_fingerprint"),
        "canvas_data_version": lineage.get("canvas_data_version"), "schema_hash": lineage.get("schema_hash"),
        "code_version": manifest.get("code_version"), "seconds": manifest.get("seconds"), "path": str(path),
        "note": manifest.get("note") or None, "trained_at": now}


def score_rows(manifest: dict[str, Any]) -> pd.DataFrame:
    """The manifest's evaluation table as ``forecast_scores`` rows (none when the node was not evaluated)."""
    records = ((manifest.get("evaluation") or {}).get("forecasts")) or []
    frame = pd.DataFrame.from_records(records)
    if not frame.empty:
        frame = frame[frame["n_cells"] > 0]  # groups of the canvas without a scored cell are not rows
    if frame.empty:
        return pd.DataFrame(columns=list(SCORE_COLUMNS))
    frame = frame.rename(columns={"group": "field_group", "model": "forecaster"})
    frame["horizon"] = frame["horizon"].astype(str)
    frame["node"] = manifest["node"]["name"]
    frame["data_version"] = manifest.get("lineage", {}).get("canvas_data_version")
    frame["code_version"] = manifest.get("code_version")
    frame["weights_sha256"] = manifest.get("weights_sha256")
    for column in SCORE_COLUMNS:
        if column not in frame:
            frame[column] = None
    return frame[list(SCORE_COLUMNS)]


def record_checkpoint(conn: duckdb.DuckDBPyConnection, manifest: dict[str, Any], path: Path,
                      now: dt.datetime) -> None:
    """Upsert the node's ``checkpoints`` row and replace its ``forecast_scores`` rows (in one transaction)."""
    _ensure(conn, "checkpoints", CHECKPOINT_COLUMNS)
    _ensure(conn, "forecast_scores", SCORE_COLUMNS, key="node, field_group, horizon, forecaster")
    row = checkpoint_row(manifest, path, now)
    scores = score_rows(manifest)
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(INTEGRATION_GAIN)
        conn.execute("DELETE FROM checkpoints WHERE node = ?", [row["node"]])
        conn.execute(f"INSERT INTO checkpoints ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                     list(row.values()))
        conn.execute("DELETE FROM forecast_scores WHERE node = ?", [row["node"]])
        if len(scores):
            conn.register("incoming_scores", scores)
            conn.execute(f"INSERT INTO forecast_scores SELECT {', '.join(SCORE_COLUMNS)} FROM incoming_scores")
            conn.unregister("incoming_scores")
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
