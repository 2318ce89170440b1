"""The DuckDB warehouse as a Dagster resource: short-lived connections that wait for the lock.

With ``parquet_dir`` (``GWM_WAREHOUSE_PARQUET``, for a cluster where every step runs in its own pod),
read-only connections read the Parquet export instead of the file, and writers publish to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from pydantic import Field

from gwm_assets.resources.paths import warehouse_parquet_dir, warehouse_path
from gwm_assets.warehouse.connection import open_warehouse

#: The Dagster concurrency pool of every asset that writes the warehouse (limit 1 in the instance's
#: ``dagster.yaml``): DuckDB takes one writing process per file, across runs.
WRITER_POOL = "duckdb_write"
#: The op tag every writer carries as well, so that a run's own executor can hold its writers to one at a time
#: (``tag_concurrency_limits`` of ``gwm_assets.resources.deployment.LOCAL_EXECUTOR``). Without it the writers of
#: one run all ask the pool, and a step the pool turns away asks again only after a back-off that grows to 15 s.
WRITER_TAG = {"gwm/warehouse": "write"}
#: ``@dg.asset(**WRITER_ASSET, ...)``: the pool and the tag.
WRITER_ASSET = {"pool": WRITER_POOL, "op_tags": WRITER_TAG}


class WarehouseResource(dg.ConfigurableResource):
    """``warehouse/gwm.duckdb`` (or ``GWM_WAREHOUSE``). Writers also sit in pool ``duckdb_write`` (``WRITER_ASSET``)."""

    path: str = Field(default_factory=lambda: str(warehouse_path()),
                      description="DuckDB file of the warehouse")
    lock_timeout_s: float = Field(default=300.0, description="how long to wait for another writer")
    parquet_dir: str = Field(default_factory=lambda: str(warehouse_parquet_dir() or ""),
                             description="Parquet export that readers read and writers publish to; empty = the "
                                         "DuckDB file only")

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        log = dg.get_dagster_logger()
        told = False

        def waiting(waited: float, exc: BaseException) -> None:
            nonlocal told
            if not told:
                log.info(f"warehouse {self.path} is locked by another process; waiting ({exc})")
                told = True

        def published(report) -> None:
            if report.changed:
                log.info(f"warehouse published to {report.directory}: {len(report.written)} tables written "
                         f"({', '.join(report.written) or 'none'}), {len(report.kept)} unchanged")

        with open_warehouse(self.path, read_only=read_only, timeout_s=self.lock_timeout_s, on_wait=waiting,
                            parquet_dir=self.parquet_dir or None, on_publish=published) as conn:
            yield conn
