"""Where gwm keeps its files: the project root and the warehouse, overridable by environment."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def project_root() -> Path:
    """``GWM_HOME`` if set, else the checkout that holds this package."""
    return Path(os.environ.get("GWM_HOME", PACKAGE_ROOT)).resolve()


def warehouse_path() -> Path:
    """The DuckDB file: ``GWM_WAREHOUSE`` if set, else ``<project root>/warehouse/gwm.duckdb``."""
    env = os.environ.get("GWM_WAREHOUSE")
    return Path(env).resolve() if env else project_root() / "warehouse" / "gwm.duckdb"


def warehouse_parquet_dir() -> Path | None:
    """``GWM_WAREHOUSE_PARQUET``: the Parquet export readers use and writers publish to; None = the file only."""
    env = os.environ.get("GWM_WAREHOUSE_PARQUET")
    return Path(env).resolve() if env else None


def schema_path() -> Path | None:
    """A world schema file given by ``GWM_SCHEMA``; None means the packaged ``world.yaml``."""
    env = os.environ.get("GWM_SCHEMA")
    return Path(env).resolve() if env else None


def curriculum_path() -> Path:
    """The curriculum spec: ``GWM_CURRICULUM`` if set, else ``curricula/standard.yaml`` in the project."""
    env = os.environ.get("GWM_CURRICULUM")
    return Path(env).resolve() if env else PACKAGE_ROOT / "curricula" / "standard.yaml"


def canvases_dir(warehouse: str | Path) -> Path:
    """Canvas files live beside the warehouse file: ``<warehouse dir>/canvases/<node>/``."""
    return Path(warehouse).resolve().parent / "canvases"


def checkpoints_dir(warehouse: str | Path) -> Path:
    """Node checkpoints live beside the warehouse file: ``<warehouse dir>/checkpoints/<node>/``."""
    return Path(warehouse).resolve().parent / "checkpoints"
