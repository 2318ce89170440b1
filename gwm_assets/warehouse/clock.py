"""The warehouse's clock: timestamps are stored as naive UTC (``TIMESTAMP`` columns carry no zone)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, in UTC, without a zone: what every ``*_at`` column of the warehouse holds."""
    return datetime.now(UTC).replace(tzinfo=None)
