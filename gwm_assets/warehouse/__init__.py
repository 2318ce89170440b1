"""The DuckDB warehouse's plumbing, below everything that writes through it.

Owns: connections that wait for the file lock (``connection``), its errors (``errors``), transactions,
raw-table upserts (``raw_store``), the ledger tables ``provenance``, ``refresh_log`` and ``quarantine``
with the rejected-row type (``ledger``), the coverage views (``coverage_views``), the Parquet export
readers can use instead of the file (``parquet``) and the warehouse's clock (``clock``).

May import: nothing of gwm_assets outside this folder, and no Dagster.
"""

from gwm_assets.warehouse.connection import connect, open_warehouse, transaction
from gwm_assets.warehouse.errors import WarehouseBusy, WarehouseMissing

__all__ = ["WarehouseBusy", "WarehouseMissing", "connect", "open_warehouse", "transaction"]
