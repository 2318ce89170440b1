"""What every source module shares: fetch results, rejected rows, and source errors.

A source module knows its API and nothing about canvases. Its fetcher takes an injected HTTP
client (so tests intercept the network) and returns a :class:`FetchResult`: an Arrow table in the
source's own columns plus the rows it could not parse, each with a reason. Rejected rows go to the
warehouse's ``quarantine`` table; they never stop the good rows from landing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime

import pyarrow as pa


class SourceError(RuntimeError):
    """A fetch failed as a whole (HTTP error, missing key, empty answer). Names source and series."""

    def __init__(self, source: str, message: str, series: str | None = None):
        self.source = source
        self.series = series
        where = f"{source}" + (f" series {series}" if series else "")
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Reject:
    """One input row that could not be accepted, and why."""

    source: str
    source_key: str
    ts: date | datetime | None
    reason: str
    raw: dict = field(default_factory=dict)

    def as_row(self) -> dict[str, object]:
        ts = self.ts.isoformat() if self.ts is not None else None
        return {"source": self.source, "source_key": self.source_key, "ts": ts, "reason": self.reason,
                "raw": json.dumps(self.raw, default=str, sort_keys=True)}


@dataclass
class FetchResult:
    """Rows a fetch produced (source-native columns) and rows it rejected."""

    table: pa.Table
    rejects: list[Reject] = field(default_factory=list)

    @property
    def num_rows(self) -> int:
        return self.table.num_rows
