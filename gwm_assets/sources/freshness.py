"""Whether a live source refreshed within its release cadence.

One answer, shared by the ``freshness`` asset checks (inside runs) and the ``stale_sources`` sensor
(between runs, also when every schedule is stopped):

* a source is **live** when :meth:`SourceSettings.offline_reason` says so (the one function that decides
  it, which the source assets and their schedules and sensors ask too);
* a live source is **stale** when its last successful refresh (``refresh_log`` status ``ok`` or
  ``partial``) is older than its cadence, or it never refreshed;
* a source that is not live is **offline**, never stale: its rows come from the embedded default.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from gwm_assets.resources.sources import SourceSettings
from gwm_assets.sources.raw_tables import RAW_SPECS, WATERMARKS

# how often each live source publishes something new (days); tabular has no cadence
CADENCE_DAYS: dict[str, int] = {"fred": 3, "yahoo": 4, "pmi": 35, "earnings": 100, "news": 1}
# what turns each live source on, as the messages name it
LIVE_SETTING: dict[str, str] = {"fred": "FRED_API_KEY", "yahoo": "GWM_LIVE=1", "pmi": "GWM_LIVE=1",
                                "earnings": "GWM_LIVE=1 and a SEC user agent", "news": "GWM_LIVE=1"}


@dataclass(frozen=True)
class SourceFreshness:
    """One live source's standing: ``state`` is ``fresh``, ``stale`` or ``offline``."""

    source: str
    state: str
    cadence_days: int
    last_successful_refresh: datetime | None
    last_status: str | None
    last_message: str | None
    latest_data_point: object | None
    summary: str

    @property
    def passed(self) -> bool:
        """The freshness check passes unless the source is live and stale."""
        return self.state != "stale"

    def metadata(self) -> dict[str, object]:
        return {"state": self.state, "last_successful_refresh": str(self.last_successful_refresh or "never"),
                "last_status": self.last_status or "never run",
                "latest_data_point": str(self.latest_data_point or "none"), "cadence_days": self.cadence_days,
                "summary": self.summary}


def _tables(conn: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def read_freshness(conn: duckdb.DuckDBPyConnection, settings: SourceSettings, now: datetime,
                   sources: list[str] | None = None) -> list[SourceFreshness]:
    """The standing of each live source (all of :data:`CADENCE_DAYS` unless ``sources``), read from
    ``refresh_log`` and the raw tables; ``now`` is naive UTC like the ledger. Works on a read-only
    connection and on a warehouse where the ledger or a raw table does not exist yet."""
    wanted = [s for s in CADENCE_DAYS if sources is None or s in sources]
    tables = _tables(conn)
    logged: dict[str, tuple] = {}
    if "refresh_log" in tables:
        logged = {r[0]: r[1:] for r in conn.execute("""
            SELECT source, max(finished_at) FILTER (status IN ('ok', 'partial')), arg_max(status, finished_at),
                   arg_max(message, finished_at)
            FROM refresh_log GROUP BY source""").fetchall()}
    out = []
    for source in wanted:
        days = CADENCE_DAYS[source]
        spec, (_, column) = RAW_SPECS[source], WATERMARKS[source]
        latest = (conn.execute(f'SELECT max("{column}") FROM {spec.name}').fetchone()[0]
                  if spec.name in tables else None)
        last_ok, last_status, last_message = logged.get(source, (None, None, None))
        blocker = settings.offline_reason(source)
        if blocker is not None:
            state = "offline"
            held = (f"history comes from the embedded default, latest data point {latest}" if latest is not None
                    else "the embedded default has no real history for it")
            summary = f"{source}: offline, live refresh is off ({blocker}); {held}"
        else:
            fresh = last_ok is not None and now - last_ok <= timedelta(days=days)
            state = "fresh" if fresh else "stale"
            when = f"last successful refresh {last_ok}" if last_ok is not None else "never refreshed successfully"
            summary = (f"{source}: {state}, {when} ({'within' if fresh else 'older than'} its {days}-day cadence)"
                       + (f"; last run {last_status}: {last_message}" if last_status not in ("ok", None) else ""))
        out.append(SourceFreshness(source, state, days, last_ok, last_status, last_message, latest, summary))
    return out
