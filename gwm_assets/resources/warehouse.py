"""The DuckDB warehouse as a Dagster resource: short-lived connections that wait for the lock."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from pydantic import Field

from gwm_assets.paths import warehouse_path
from gwm_assets.warehouse.connection import open_warehouse


class WarehouseResource(dg.ConfigurableResource):
    """``warehouse/gwm.duckdb`` (or ``GWM_WAREHOUSE``). Writers also sit in pool ``duckdb_write``."""

    path: str = Field(default_factory=lambda: str(warehouse_path()),
                      description="DuckDB file of the warehouse")
    lock_timeout_s: float = Field(default=300.0, description="how long to wait for another writer")

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        log = dg.get_dagster_logger()
        told = False

        def waiting(waited: float, exc: BaseException) -> None:
            nonlocal told
            if not told:
                log.info(f"warehouse {self.path} is locked by another process; waiting ({exc})")
                told = True

        with open_warehouse(self.path, read_only=read_only, timeout_s=self.lock_timeout_s,
                            on_wait=waiting) as conn:
            yield conn
