"""What every source module shares: fetch results, rejected rows, and source errors.

A source module knows its API and nothing about canvases. Its fetcher takes an injected HTTP
client (so tests intercept the network) and returns a :class:`FetchResult`: an Arrow table in the
source's own columns plus the rows it could not parse, each with a reason. Rejected rows
(:class:`~gwm_assets.warehouse.ledger.Reject`, owned by the warehouse's quarantine) go to the
``quarantine`` table; they never stop the good rows from landing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from gwm_assets.warehouse.ledger import Reject


class SourceError(RuntimeError):
    """A fetch failed as a whole (HTTP error, missing key, empty answer). Names source and series."""

    def __init__(self, source: str, message: str, series: str | None = None):
        self.source = source
        self.series = series
        where = f"{source}" + (f" series {series}" if series else "")
        super().__init__(f"{where}: {message}")


@dataclass
class FetchResult:
    """Rows a fetch produced (source-native columns) and rows it rejected."""

    table: pa.Table
    rejects: list[Reject] = field(default_factory=list)

    @property
    def num_rows(self) -> int:
        return self.table.num_rows
