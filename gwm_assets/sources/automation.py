"""When the sources refresh: a job per live source, schedules on each release cadence, the EDGAR filings
sensor, and the stale-sources sensor.

* ``refresh_<source>`` (fred, yahoo, pmi, earnings, news): the raw asset, its checks and everything
  downstream of it except the ``training`` group, in one run, so checks, ``observations``,
  ``coverage`` and the canvases follow the source in the same run (the blocking observations checks
  stop the canvases in-run when they fail).
* Schedules, each in an explicit timezone, start those jobs on the source's release cadence. A tick
  without the source's credentials is skipped with the reason (``FRED_API_KEY is not set``,
  ``GWM_LIVE=1 is not set``), so the UI's tick history says why nothing ran; a tick while the previous
  run of the same job is still queued or running is skipped too.
* ``edgar_filings`` polls the SEC submissions index and starts ``refresh_earnings`` when a 10-Q/10-K
  (or amendment) was filed since its cursor.
* ``stale_sources`` reads the warehouse read-only every hour and reports each live source's
  ``freshness`` check, so a stopped schedule shows up as a failing (warning) check in the UI.

What follows a source materialized by hand is in ``gwm_assets/automation/conditions.py``; the training
policy in ``gwm_assets/training/automation.py``.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import dagster as dg

from gwm_assets.automation.policy import TRAINING, TRIGGER_TAG, running_run, schedule_status, sensor_status
from gwm_assets.resources.sources import SourceSettings
from gwm_assets.resources.warehouse import WarehouseResource
from gwm_assets.resources.world import WorldSchemaResource
from gwm_assets.sources import earnings
from gwm_assets.sources.assets import RAW_ASSETS
from gwm_assets.sources.base import SourceError
from gwm_assets.sources.catalog import load_catalog
from gwm_assets.sources.checks import freshness_outcome
from gwm_assets.sources.freshness import CADENCE_DAYS, read_freshness
from gwm_assets.warehouse.clock import utcnow
from gwm_assets.warehouse.errors import WarehouseBusy, WarehouseMissing

STALE_LOCK_WAIT_S = 20.0  # a sensor tick has 60 s; a writer holding the warehouse longer means "look next hour"

# the sources with a release cadence (tabular files change when their owner says so)
LIVE_ASSETS: dict[str, dg.AssetsDefinition] = {s: RAW_ASSETS[s] for s in CADENCE_DAYS}


def refresh_selection(source: str) -> dg.AssetSelection:
    """The source's raw asset and everything downstream of it, checks included, minus training."""
    return dg.AssetSelection.assets(LIVE_ASSETS[source]).downstream() - TRAINING


REFRESH_JOBS = {  # source -> its refresh job
    source: dg.define_asset_job(
        f"refresh_{source}", selection=refresh_selection(source), tags={"gwm/source": source},
        description=f"Refresh {source} ({asset.key.to_user_string()}) and everything downstream of it except "
                    "training: checks, observations, coverage and the canvases follow in the same run.")
    for source, asset in LIVE_ASSETS.items()
}


# --- schedules ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cadence:
    """When one source's refresh is scheduled, and why then."""

    source: str
    name: str
    cron: str
    timezone: str
    why: str


CADENCES: tuple[Cadence, ...] = (
    Cadence("fred", "fred_daily", "0 19 * * *", "America/New_York",
            "Every day at 19:00 New York time: FRED posts the day's releases (most at 8:30 or 10:00 ET) within "
            "hours, so by the evening the day's values and revisions (new ALFRED vintages) are in. Weekend runs "
            "find little and cost little."),
    Cadence("yahoo", "yahoo_after_close", "30 17 * * 1-5", "America/New_York",
            "Monday to Friday at 17:30 New York time: 90 minutes after the 16:00 close, when Yahoo's daily bar "
            "and adjusted close have settled. On an exchange holiday the run finds nothing new."),
    Cadence("pmi", "pmi_monthly", "0 18 1-8 * *", "America/New_York",
            "18:00 New York time on days 1-8 of each month: ISM publishes Manufacturing on the first business "
            "day and Services on the third (one later in January), at 10:00 ET; DBnomics republishes within "
            "hours. Days 1-8 cover both releases whatever the weekday and holidays; the other runs find "
            "nothing new."),
    Cadence("news", "news_hourly", "15 * * * *", "UTC",
            "Every hour at minute 15 (UTC): the feeds publish around the clock; a quarter past keeps clear of "
            "the top of the hour."),
)


def refresh_schedule(cadence: Cadence) -> dg.ScheduleDefinition:
    job = REFRESH_JOBS[cadence.source]

    @dg.schedule(name=cadence.name, cron_schedule=cadence.cron, execution_timezone=cadence.timezone, job=job,
                 default_status=schedule_status(),
                 description=f"{cadence.why} Skips (saying why) while {cadence.source} has no credentials.")
    def _schedule(context: dg.ScheduleEvaluationContext, settings: SourceSettings):
        blocker = settings.offline_reason(cadence.source)
        if blocker is not None:
            return dg.SkipReason(f"{cadence.source} is offline: {blocker}; raw_{cadence.source} keeps its rows. "
                                 "Set it in the code location's environment to refresh on this schedule.")
        running = running_run(context.instance, job.name)
        if running is not None:
            return dg.SkipReason(f"{job.name}: the previous run {running} is still queued or running")
        when = context.scheduled_execution_time or datetime.now(UTC)
        return dg.RunRequest(run_key=f"{cadence.name}:{when.isoformat()}",
                             tags={TRIGGER_TAG: f"schedule:{cadence.name}"})

    return _schedule


REFRESH_SCHEDULES: list[dg.ScheduleDefinition] = [refresh_schedule(c) for c in CADENCES]


# --- earnings: on filings -----------------------------------------------------------------------------

EDGAR_POLL_S = 3600


def catalog_tickers(world: WorldSchemaResource) -> list[str]:
    """The firms ``raw_earnings`` fetches: the tickers of the catalog's earnings series."""
    return sorted({m.key.split(":", 1)[0] for m in load_catalog(world.load()) if m.source == "earnings"})


def new_filings(filings: Sequence[earnings.Filing], seen: dict | None) -> list[earnings.Filing]:
    """Filings after the cursor entry ``seen`` ({"filed": ISO date or None, "accessions": [...] filed
    that day}). Without an entry (first poll of a firm) the newest filing counts as new, so turning
    the source on catches up once."""
    if seen is None:
        return list(filings[:1])
    last = date.fromisoformat(seen["filed"]) if seen.get("filed") else date.min
    known = set(seen.get("accessions") or [])
    return [f for f in filings if f.filed > last or (f.filed == last and f.accession not in known)]


def advance(seen: dict | None, filings: Sequence[earnings.Filing]) -> dict:
    """The cursor entry after ``filings``: the latest filing date and every accession filed that day."""
    if not filings:
        return seen or {"filed": None, "accessions": []}
    latest = max(f.filed for f in filings)
    accessions = {f.accession for f in filings if f.filed == latest}
    if seen and seen.get("filed") == latest.isoformat():
        accessions |= set(seen.get("accessions") or [])
    if seen and seen.get("filed") and date.fromisoformat(seen["filed"]) > latest:
        return seen  # the index shrank or lags: never move the cursor back
    return {"filed": latest.isoformat(), "accessions": sorted(accessions)}


@dg.sensor(name="edgar_filings", job=REFRESH_JOBS["earnings"], minimum_interval_seconds=EDGAR_POLL_S,
           default_status=sensor_status(),
           description="Earnings refresh on filings: every hour, reads each catalog firm's SEC EDGAR submissions "
                       "index (data.sec.gov/submissions/CIK##########.json) and starts refresh_earnings when a "
                       "10-Q, 10-K or amendment was filed since the cursor (per firm: latest filing date and its "
                       "accession numbers). Skips while GWM_LIVE=1 is not set.")
def edgar_filings(context: dg.SensorEvaluationContext, settings: SourceSettings, world: WorldSchemaResource):
    blocker = settings.offline_reason("earnings")
    if blocker is not None:
        return dg.SkipReason(f"earnings is offline: {blocker}; EDGAR is not polled")
    cursor: dict = json.loads(context.cursor) if context.cursor else {}
    client = earnings.EdgarClient(session=settings.session(), user_agent=settings.sec_user_agent)
    tickers = catalog_tickers(world)
    found: list[earnings.Filing] = []
    errors: list[str] = []
    following = dict(cursor)
    for ticker in tickers:
        if ticker not in earnings.FIRMS:
            errors.append(f"{ticker}: no CIK known (add it to gwm_assets.sources.earnings.FIRMS)")
            continue
        try:
            filings = client.recent_filings(ticker, earnings.FIRMS[ticker])
        except SourceError as exc:
            errors.append(str(exc))
            continue
        found += new_filings(filings, cursor.get(ticker))
        following[ticker] = advance(cursor.get(ticker), filings)
    for error in errors:
        context.log.warning(f"edgar_filings: {error}")
    if tickers and len(errors) == len(tickers):
        raise SourceError("earnings", "EDGAR submissions could not be read for any firm: " + "; ".join(errors))
    next_cursor = json.dumps(following, sort_keys=True)
    if not found:
        latest = ", ".join(f"{t} {following[t]['filed']}" for t in tickers if t in following)
        note = f"; {len(errors)} firm(s) failed: " + "; ".join(errors) if errors else ""
        return dg.SensorResult(skip_reason=f"no new 10-Q/10-K filing (latest filed: {latest}){note}",
                               cursor=next_cursor)
    listed = "; ".join(f"{f.ticker} {f.form} filed {f.filed} ({f.accession})" for f in found)
    context.log.info(f"edgar_filings: new filings: {listed}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key="edgar:" + ",".join(sorted(f.accession for f in found)),
                                    tags={TRIGGER_TAG: "sensor:edgar_filings",
                                          "gwm/filings": ", ".join(sorted({f"{f.ticker} {f.form}" for f in found}))})],
        cursor=next_cursor)


# --- stale sources ------------------------------------------------------------------------------------

STALE_POLL_S = 3600


@dg.sensor(name="stale_sources", minimum_interval_seconds=STALE_POLL_S, default_status=sensor_status(),
           description="Every hour, reads refresh_log read-only and reports each live source's `freshness` check "
                       "(a warning when the last successful refresh is older than the source's cadence; offline "
                       "sources pass and say so). It catches what no run reports: a schedule that was stopped. "
                       "The tick text lists every source's standing; starts no runs.")
def stale_sources(context: dg.SensorEvaluationContext, warehouse: WarehouseResource, settings: SourceSettings):
    reader = WarehouseResource(**{**warehouse.model_dump(), "lock_timeout_s": STALE_LOCK_WAIT_S})
    try:
        with reader.connect(read_only=True) as conn:
            standing = read_freshness(conn, settings, utcnow())
    except WarehouseMissing:
        return dg.SkipReason(f"no warehouse at {warehouse.path} yet: nothing to judge until the first "
                             "materialization (`make run` or the UI)")
    except WarehouseBusy:
        return dg.SkipReason(f"the warehouse {warehouse.path} stayed locked by a writer for {STALE_LOCK_WAIT_S:.0f} s;"
                             " looking again at the next tick")
    previous: dict = json.loads(context.cursor) if context.cursor else {}
    # report a source's check when its standing changed (runs report it themselves in between)
    events = [dg.AssetCheckEvaluation(**freshness_outcome(item)) for item in standing
              if previous.get(item.source) != item.state]
    stale = [item for item in standing if item.state == "stale"]
    for item in stale:
        context.log.warning(item.summary)
    head = (f"STALE: {', '.join(i.source for i in stale)}" if stale else "no stale source")
    return dg.SensorResult(skip_reason=f"{head} | " + " | ".join(item.summary for item in standing),
                           asset_events=events, cursor=json.dumps({i.source: i.state for i in standing},
                                                                  sort_keys=True))


SOURCE_JOBS = list(REFRESH_JOBS.values())
SOURCE_SENSORS = [edgar_filings, stale_sources]
