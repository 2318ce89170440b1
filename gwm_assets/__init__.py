"""gwm_assets: the Dagster code location (sources, warehouse, checks, canvases, training)."""
