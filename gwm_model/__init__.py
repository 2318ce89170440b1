"""gwm_model: the pure library of gwm (schema, canvas layout, model, training). No Dagster here."""

__version__ = "0.1.0"
