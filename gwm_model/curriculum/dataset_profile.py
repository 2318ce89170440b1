"""A dataset as the curriculum planners see it: what it fills of the world and which source feeds it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetProfile:
    """A dataset as the planner sees it. ``fields``: world field paths or subtree prefixes it fills;
    ``source``: the data source name nodes list in ``data_sources`` (default: ``name``)."""

    name: str
    description: str = ""
    fields: tuple[str, ...] = ()
    source: str | None = None
    frequency: str | None = None
    n_rows: int | None = None
    columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for key in ("fields", "columns"):
            value = getattr(self, key)
            object.__setattr__(self, key, (value,) if isinstance(value, str) else tuple(value))

    @property
    def source_name(self) -> str:
        return self.source or self.name
