"""The ``checkpoints`` table: one row per curriculum node's latest checkpoint, read from its manifest.

The checkpoint files are the truth (a manifest is enough to reload and continue); the row is their
index for SQL: ``gwm sql "select node, parents, steps, val_skill from checkpoints"``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb

CHECKPOINTS_DDL = """CREATE TABLE IF NOT EXISTS checkpoints (
    node VARCHAR PRIMARY KEY, tier INTEGER, parents VARCHAR[], profile VARCHAR, trained BOOLEAN, steps INTEGER,
    val_loss DOUBLE, val_skill DOUBLE, test_skill DOUBLE, dm_pvalue DOUBLE, merge_method VARCHAR,
    worst_surviving_share DOUBLE, worst_ensemble_gap DOUBLE, max_barrier DOUBLE, worst_child_minus_parent DOUBLE,
    trainable_fraction DOUBLE, parameters BIGINT, n_model_fields INTEGER, weights_sha256 VARCHAR,
    inputs_fingerprint VARCHAR, canvas_data_version VARCHAR, schema_hash VARCHAR, code_version VARCHAR,
    seconds DOUBLE, path VARCHAR, note VARCHAR, trained_at TIMESTAMP)"""


def checkpoint_row(manifest: dict[str, Any], path: Path, now: dt.datetime) -> list[object]:
    node = manifest["node"]
    metrics = manifest.get("metrics", {})
    merge = manifest.get("merge", {})
    quality = merge.get("quality") or {}
    after = merge.get("child_vs_parents") or {}
    lineage = manifest.get("lineage", {})
    return [node["name"], node["tier"], list(node["parents"]), manifest.get("profile"), bool(manifest.get("steps")),
            int(manifest.get("steps") or 0), metrics.get("val_loss"), metrics.get("val_skill"),
            metrics.get("test_skill"), metrics.get("dm_pvalue"), merge.get("report", {}).get("method"),
            quality.get("worst_surviving_share"), quality.get("worst_ensemble_gap"), quality.get("max_barrier"),
            after.get("worst_child_minus_parent"), manifest.get("trainable_fraction"),
            manifest.get("parameters", {}).get("total"), len(manifest.get("plan", {}).get("fields", [])),
            manifest.get("weights_sha256"), manifest.get("inputs_fingerprint"), lineage.get("canvas_data_version"),
            lineage.get("schema_hash"), manifest.get("code_version"), manifest.get("seconds"), str(path),
            manifest.get("note") or None, now]


def record_checkpoint(conn: duckdb.DuckDBPyConnection, manifest: dict[str, Any], path: Path,
                      now: dt.datetime) -> None:
    """Upsert the node's row (in one transaction)."""
    conn.execute(CHECKPOINTS_DDL)
    row = checkpoint_row(manifest, path, now)
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute("DELETE FROM checkpoints WHERE node = ?", [row[0]])
        conn.execute(f"INSERT INTO checkpoints VALUES ({', '.join('?' * len(row))})", row)
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
