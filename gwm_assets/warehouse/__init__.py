"""Warehouse plumbing with no Dagster dependency: connections, transactions, table writers."""

from gwm_assets.warehouse.connection import (
    WarehouseBusy,
    WarehouseMissing,
    connect,
    open_warehouse,
    transaction,
)

__all__ = ["WarehouseBusy", "WarehouseMissing", "connect", "open_warehouse", "transaction"]
