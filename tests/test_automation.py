"""Automated refreshes (gwm_assets/sources/automation.py, training/automation.py and automation/) with real
Dagster components: refresh jobs and their selections, cadence schedules evaluated tick by tick, the EDGAR
filings sensor against intercepted HTTP, the stale-sources sensor against a real DuckDB warehouse, the eager
follow-up conditions evaluated with ``evaluate_automation_conditions``, and the opt-in training policy."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import responses

from gwm_assets.automation import policy
from gwm_assets.automation.conditions import FOLLOW_CHECKED, FOLLOW_UPSTREAM
from gwm_assets.definitions import defs
from gwm_assets.resources.sources import SourceSettings
from gwm_assets.resources.warehouse import WarehouseResource
from gwm_assets.resources.world import WorldSchemaResource
from gwm_assets.sources import automation as source_automation
from gwm_assets.sources import earnings
from gwm_assets.sources.raw_tables import RAW_SPECS
from gwm_assets.training import automation as training_automation
from gwm_assets.warehouse.clock import utcnow
from gwm_assets.warehouse.connection import open_warehouse
from gwm_assets.warehouse.ledger import RefreshEntry, record_refresh
from tests.sources.fakes import register_submissions, submissions_json

NY = ZoneInfo("America/New_York")
ENV = ("FRED_API_KEY", "GWM_LIVE", "SEC_USER_AGENT", "GWM_AUTOMATION", "GWM_TRAINING_POLICY")
GRAPH = defs.resolve_asset_graph()
TRAIN_KEYS = {k for k in GRAPH.materializable_asset_keys if k.path[0] == "train"}
FORECASTS = dg.AssetKey("forecasts")  # group training too: it runs after the checkpoints
CANVAS_KEYS = {k for k in GRAPH.materializable_asset_keys if k.path[0] == "canvas"}
OBS = dg.AssetKey("observations")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Each test states its credentials; none leak in from the shell."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def user(key: dg.AssetKey | dg.AssetCheckKey) -> str:
    if isinstance(key, dg.AssetCheckKey):
        return f"{key.asset_key.to_user_string()}:{key.name}"
    return key.to_user_string()


# --- refresh jobs -------------------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["fred", "yahoo", "pmi", "earnings", "news"])
def test_refresh_job_runs_source_checks_and_everything_downstream_but_training(source):
    job = defs.resolve_job_def(f"refresh_{source}")
    assets = set(job.asset_layer.selected_asset_keys)
    checks = set(job.asset_layer.asset_graph.asset_check_keys)
    raw = dg.AssetKey(f"raw_{source}")
    assert {raw, OBS, dg.AssetKey("coverage"), dg.AssetKey("coverage_plan"), *CANVAS_KEYS} == assets
    assert not assets & (TRAIN_KEYS | {FORECASTS})
    # every check of the raw table (freshness included) and of observations, blocking ones too
    assert checks == set(GRAPH.get(raw).check_keys) | set(GRAPH.get(OBS).check_keys)
    assert dg.AssetCheckKey(raw, "freshness") in checks
    assert any(GRAPH.get(k).blocking for k in checks)


def test_training_job_is_exactly_the_training_group():
    job = defs.resolve_job_def("train_curriculum")
    assert set(job.asset_layer.selected_asset_keys) == TRAIN_KEYS | {FORECASTS}
    assert {"train/trunk"} <= {user(k) for k in TRAIN_KEYS}


# --- cadence schedules --------------------------------------------------------------------------------

def test_schedules_have_their_cadence_in_an_explicit_timezone():
    repo = defs.get_repository_def()
    got = {s.name: (s.cron_schedule, s.execution_timezone, s.job_name) for s in repo.schedule_defs}
    assert got == {
        "fred_daily": ("0 19 * * *", "America/New_York", "refresh_fred"),
        "yahoo_after_close": ("30 17 * * 1-5", "America/New_York", "refresh_yahoo"),
        "pmi_monthly": ("0 18 1-8 * *", "America/New_York", "refresh_pmi"),
        "news_hourly": ("15 * * * *", "UTC", "refresh_news"),
        "weekly_training": ("0 2 * * 6", "America/New_York", "train_curriculum"),
    }
    for name in ("fred_daily", "yahoo_after_close", "pmi_monthly", "news_hourly"):
        assert repo.get_schedule_def(name).default_status == dg.DefaultScheduleStatus.RUNNING


def tick(name: str, instance, when: datetime):
    schedule = defs.get_repository_def().get_schedule_def(name)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when,
                                        resources={"settings": SourceSettings()})
    return schedule.evaluate_tick(context)


def test_schedule_skips_naming_the_missing_credential(instance):
    when = datetime(2025, 3, 4, 19, 0, tzinfo=NY)
    fred = tick("fred_daily", instance, when)
    assert not fred.run_requests and "FRED_API_KEY is not set" in fred.skip_message
    for name in ("yahoo_after_close", "pmi_monthly", "news_hourly"):
        data = tick(name, instance, when)
        assert not data.run_requests and "GWM_LIVE=1 is not set" in data.skip_message, name


def test_schedule_with_credentials_requests_its_refresh_job_once_per_scheduled_time(instance, monkeypatch):
    monkeypatch.setenv("FRED_API_KEY", "test-key")
    when = datetime(2025, 3, 4, 19, 0, tzinfo=NY)
    data = tick("fred_daily", instance, when)
    [request] = data.run_requests  # for the schedule's job, refresh_fred
    assert defs.get_repository_def().get_schedule_def("fred_daily").job_name == "refresh_fred"
    assert request.run_key == f"fred_daily:{when.isoformat()}"
    assert request.tags[policy.TRIGGER_TAG] == "schedule:fred_daily"
    assert tick("fred_daily", instance, when + timedelta(days=1)).run_requests[0].run_key != request.run_key
    # FRED's key does not turn on the other sources
    assert "GWM_LIVE=1" in tick("news_hourly", instance, when).skip_message
    monkeypatch.setenv("GWM_LIVE", "1")
    assert tick("yahoo_after_close", instance, when).run_requests[0].tags[policy.TRIGGER_TAG] == \
        "schedule:yahoo_after_close"


def test_schedule_skips_while_its_previous_run_is_still_going(monkeypatch):
    monkeypatch.setenv("GWM_LIVE", "1")
    with dg.instance_for_test() as inst:
        inst.add_run(dg.DagsterRun(job_name="refresh_news", run_id="a" * 36, status=dg.DagsterRunStatus.STARTED))
        data = tick("news_hourly", inst, datetime(2025, 3, 4, 12, 15, tzinfo=ZoneInfo("UTC")))
        assert not data.run_requests and "still queued or running" in data.skip_message and "a" * 36 in \
            data.skip_message
        assert tick("pmi_monthly", inst, datetime(2025, 3, 3, 18, tzinfo=NY)).run_requests  # other jobs unaffected


def test_gwm_automation_off_starts_schedules_and_sensors_stopped(monkeypatch):
    monkeypatch.setenv("GWM_AUTOMATION", "off")
    schedule = source_automation.refresh_schedule(source_automation.CADENCES[0])
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert policy.sensor_status() == dg.DefaultSensorStatus.STOPPED
    monkeypatch.setenv("GWM_AUTOMATION", "sometimes")
    with pytest.raises(ValueError, match="GWM_AUTOMATION"):
        policy.automation_on()


# --- earnings on filings ------------------------------------------------------------------------------

AAPL, MSFT = earnings.FIRMS["AAPL"], earnings.FIRMS["MSFT"]
AAPL_10Q = ("0000320193-25-000008", "10-Q", "2025-01-31", "2024-12-28")
AAPL_10K = ("0000320193-24-000123", "10-K", "2024-11-01", "2024-09-28")
AAPL_8K = ("0000320193-25-000010", "8-K", "2025-02-20", "2025-02-20")
MSFT_10Q = ("0000950170-25-010491", "10-Q", "2025-01-29", "2024-12-31")
MSFT_NEW = ("0000950170-25-061046", "10-Q", "2025-04-30", "2025-03-31")


def serve(rsps, aapl, msft) -> None:
    register_submissions(rsps, {
        AAPL: aapl if isinstance(aapl, int) else submissions_json(AAPL, "Apple Inc.", aapl),
        MSFT: msft if isinstance(msft, int) else submissions_json(MSFT, "MICROSOFT CORP", msft)})


def poll(instance, cursor: str | None = None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={
        "settings": SourceSettings(), "world": WorldSchemaResource()})
    return source_automation.edgar_filings.evaluate_tick(context)


def test_edgar_sensor_offline_skips_without_touching_the_network(instance):
    with responses.RequestsMock():  # any request would fail: nothing is registered
        data = poll(instance)
    assert not data.run_requests and "GWM_LIVE=1 is not set" in data.skip_message and data.cursor is None


def test_edgar_sensor_requests_a_refresh_per_new_filing_and_advances_its_cursor(instance, monkeypatch):
    monkeypatch.setenv("GWM_LIVE", "1")
    monkeypatch.setenv("SEC_USER_AGENT", "gwm tests tests@example.org")
    # first poll: no cursor, so the newest 10-Q/10-K per firm counts once (catch-up); the 8-K never counts
    with responses.RequestsMock() as rsps:
        serve(rsps, [AAPL_8K, AAPL_10Q, AAPL_10K], [MSFT_10Q])
        first = poll(instance)
        assert {c.request.headers["User-Agent"] for c in rsps.calls} == {"gwm tests tests@example.org"}
    [request] = first.run_requests
    assert source_automation.edgar_filings.job_name == "refresh_earnings"
    assert request.run_key == f"edgar:{AAPL_10Q[0]},{MSFT_10Q[0]}"
    assert request.tags[policy.TRIGGER_TAG] == "sensor:edgar_filings"
    assert request.tags["gwm/filings"] == "AAPL 10-Q, MSFT 10-Q"
    cursor = json.loads(first.cursor)
    assert cursor == {"AAPL": {"filed": "2025-01-31", "accessions": [AAPL_10Q[0]]},
                      "MSFT": {"filed": "2025-01-29", "accessions": [MSFT_10Q[0]]}}

    # nothing new: no run, the same cursor, and the tick says what it saw
    with responses.RequestsMock() as rsps:
        serve(rsps, [AAPL_8K, AAPL_10Q, AAPL_10K], [MSFT_10Q])
        again = poll(instance, first.cursor)
    assert not again.run_requests and json.loads(again.cursor) == cursor
    assert "no new 10-Q/10-K" in again.skip_message and "AAPL 2025-01-31" in again.skip_message

    # MSFT files its next 10-Q: one run for that accession, MSFT's cursor moves, AAPL's stays
    with responses.RequestsMock() as rsps:
        serve(rsps, [AAPL_8K, AAPL_10Q, AAPL_10K], [MSFT_NEW, MSFT_10Q])
        new = poll(instance, again.cursor)
    [request] = new.run_requests
    assert request.run_key == f"edgar:{MSFT_NEW[0]}" and request.tags["gwm/filings"] == "MSFT 10-Q"
    assert json.loads(new.cursor) == {**cursor, "MSFT": {"filed": "2025-04-30", "accessions": [MSFT_NEW[0]]}}


def test_edgar_sensor_keeps_going_when_one_firm_fails_and_fails_the_tick_when_all_do(instance, monkeypatch):
    monkeypatch.setenv("GWM_LIVE", "1")
    start = json.dumps({"AAPL": {"filed": "2025-01-31", "accessions": [AAPL_10Q[0]]},
                        "MSFT": {"filed": "2025-01-29", "accessions": [MSFT_10Q[0]]}})
    with responses.RequestsMock() as rsps:
        serve(rsps, 500, [MSFT_NEW, MSFT_10Q])
        data = poll(instance, start)
    assert data.run_requests[0].run_key == f"edgar:{MSFT_NEW[0]}"
    assert json.loads(data.cursor)["AAPL"] == json.loads(start)["AAPL"]  # unchanged until it answers
    with responses.RequestsMock() as rsps:
        serve(rsps, 500, 403)
        with pytest.raises(Exception, match="could not be read for any firm") as err:
            poll(instance, start)
    assert "User-Agent" in str(err.value)


def test_new_filings_compare_by_date_and_accession():
    day = earnings.Filing("AAPL", AAPL, "acc-2", "10-Q", datetime(2025, 1, 31).date(), None)
    same_day_other = earnings.Filing("AAPL", AAPL, "acc-3", "10-Q/A", day.filed, None)
    seen = {"filed": "2025-01-31", "accessions": ["acc-2"]}
    assert source_automation.new_filings([same_day_other, day], seen) == [same_day_other]
    assert source_automation.advance(seen, [same_day_other, day]) == {"filed": "2025-01-31",
                                                              "accessions": ["acc-2", "acc-3"]}
    assert source_automation.advance({"filed": "2025-06-01", "accessions": ["x"]}, [day])["filed"] == "2025-06-01"


# --- stale sources ------------------------------------------------------------------------------------

def look(instance, warehouse: Path, cursor: str | None = None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={
        "warehouse": WarehouseResource(path=str(warehouse)), "settings": SourceSettings()})
    return source_automation.stale_sources.evaluate_tick(context)


def refreshed(warehouse: Path, source: str, status: str, age: timedelta, message: str | None = None) -> datetime:
    finished = utcnow() - age
    with open_warehouse(warehouse) as conn:
        conn.execute(RAW_SPECS[source].ddl())
        record_refresh(conn, RefreshEntry(f"run-{source}-{age}", source, RAW_SPECS[source].name, status,
                                          finished - timedelta(seconds=5), finished, None, 1, 1, 0, 0, None, None,
                                          message))
    return finished


def test_stale_sensor_skips_until_a_warehouse_exists(instance, tmp_path):
    data = look(instance, tmp_path / "none.duckdb")
    assert not data.run_requests and not data.asset_events
    assert "no warehouse at" in data.skip_message and "none.duckdb" in data.skip_message


def test_stale_sensor_offline_sources_pass_and_say_they_are_offline(instance, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    refreshed(warehouse, "fred", "skipped", timedelta(days=30), "FRED_API_KEY is not set")
    data = look(instance, warehouse)
    assert not data.run_requests and data.skip_message.startswith("no stale source")
    by_asset = {e.asset_key.to_user_string(): e for e in data.asset_events}
    assert set(by_asset) == {"raw_fred", "raw_yahoo", "raw_pmi", "raw_earnings", "raw_news"}
    assert all(e.passed and e.check_name == "freshness" for e in data.asset_events)
    assert "offline" in by_asset["raw_fred"].description and "FRED_API_KEY" in by_asset["raw_fred"].description
    assert "GWM_LIVE=1" in by_asset["raw_news"].description


def test_stale_sensor_flags_live_sources_past_their_cadence_and_reports_changes_only(instance, tmp_path,
                                                                                    monkeypatch):
    monkeypatch.setenv("GWM_LIVE", "1")
    monkeypatch.setenv("FRED_API_KEY", "test-key")
    warehouse = tmp_path / "w.duckdb"
    fred_ok = refreshed(warehouse, "fred", "ok", timedelta(days=5))
    refreshed(warehouse, "fred", "failed", timedelta(days=1), "HTTP 500 from FRED")
    for source, age in (("yahoo", timedelta(hours=2)), ("pmi", timedelta(days=20)),
                        ("earnings", timedelta(days=40)), ("news", timedelta(minutes=30))):
        refreshed(warehouse, source, "ok", age)
    first = look(instance, warehouse)
    assert first.skip_message.startswith("STALE: fred |")
    events = {e.asset_key.to_user_string(): e for e in first.asset_events}
    assert len(events) == 5 and not events["raw_fred"].passed
    assert all(events[k].passed for k in ("raw_yahoo", "raw_pmi", "raw_earnings", "raw_news"))
    text = events["raw_fred"].description
    assert str(fred_ok) in text and "3-day cadence" in text and "HTTP 500 from FRED" in text
    assert events["raw_fred"].severity == dg.AssetCheckSeverity.WARN
    assert events["raw_fred"].metadata["last_successful_refresh"].value == str(fred_ok)

    # the same standing an hour later: nothing new to report
    second = look(instance, warehouse, first.cursor)
    assert second.asset_events == [] and second.skip_message.startswith("STALE: fred")
    # FRED refreshes again: only its check is reported, now passing
    refreshed(warehouse, "fred", "ok", timedelta(minutes=1))
    third = look(instance, warehouse, second.cursor)
    assert [(e.asset_key.to_user_string(), e.passed) for e in third.asset_events] == [("raw_fred", True)]
    assert third.skip_message.startswith("no stale source")

    # the events are valid check evaluations of the `freshness` checks the code location defines
    for event in first.asset_events:
        instance.report_runless_asset_event(event)
    key = dg.AssetCheckKey(dg.AssetKey("raw_fred"), "freshness")
    assert key in GRAPH.asset_check_keys
    [record] = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
    assert record.event.dagster_event.event_specific_data.passed is False


def test_never_refreshed_live_source_is_stale(instance, tmp_path, monkeypatch):
    monkeypatch.setenv("GWM_LIVE", "1")
    warehouse = tmp_path / "w.duckdb"
    refreshed(warehouse, "news", "ok", timedelta(minutes=5))
    data = look(instance, warehouse)
    assert data.skip_message.startswith("STALE: yahoo, pmi, earnings |")  # fred is offline (no key), news fresh
    pmi = next(e for e in data.asset_events if e.asset_key == dg.AssetKey("raw_pmi"))
    assert "never refreshed successfully" in pmi.description


# --- eager follow-up ----------------------------------------------------------------------------------

def requested(result) -> set[str]:
    return {user(r.key) for r in result.results if not r.true_subset.is_empty}


def test_only_the_non_training_followers_carry_conditions():
    conditioned = {user(k) for k in GRAPH.materializable_asset_keys | GRAPH.asset_check_keys
                   if GRAPH.get(k).automation_condition is not None}
    assert {"source_series", "observations", "coverage", "coverage_plan", *map(user, CANVAS_KEYS)} <= conditioned
    assert not conditioned & {"fields", "bundled_history", "raw_fred", "raw_yahoo", "raw_pmi", "raw_earnings",
                              "raw_news", "raw_tabular", "forecasts", *map(user, TRAIN_KEYS)}
    assert not any(c.endswith(":freshness") for c in conditioned)
    # one automation sensor covers them all: Dagster adds no default sensor beside it
    sensors = {s.name: s for s in defs.get_repository_def().sensor_defs}
    assert set(sensors) == {"edgar_filings", "stale_sources", "follow_sources"}
    assert sensors["follow_sources"].default_status == dg.DefaultSensorStatus.RUNNING
    assert not (TRAIN_KEYS | {FORECASTS}) & sensors["follow_sources"].asset_selection.resolve(GRAPH)


def test_a_source_materialized_by_hand_is_followed_by_checks_then_canvases_never_training():
    with dg.instance_for_test() as inst:
        # an instance where everything has been materialized (as after `make run`): the first tick requests nothing
        for key in GRAPH.materializable_asset_keys:
            inst.report_runless_asset_event(dg.AssetMaterialization(key))
        result = dg.evaluate_automation_conditions(defs=defs, instance=inst)
        assert result.total_requested == 0

        inst.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey("raw_fred")))
        result = dg.evaluate_automation_conditions(defs=defs, instance=inst, cursor=result.cursor)
        first = requested(result)
        assert "observations" in first and {user(k) for k in GRAPH.get(OBS).check_keys} <= first
        assert {user(k) for k in GRAPH.get(dg.AssetKey("raw_fred")).check_keys} - {"raw_fred:freshness"} <= first
        assert not first & {user(k) for k in TRAIN_KEYS} and "raw_fred:freshness" not in first

        # that run finishes with the blocking checks passing: coverage and every canvas follow (on this tick,
        # unless they already went with observations, gated in-run by its blocking checks), still no training
        inst.report_runless_asset_event(dg.AssetMaterialization(OBS))
        for check in GRAPH.get(OBS).check_keys:
            inst.report_runless_asset_event(dg.AssetCheckEvaluation(asset_key=OBS, check_name=check.name,
                                                                    passed=True))
        result = dg.evaluate_automation_conditions(defs=defs, instance=inst, cursor=result.cursor)
        second = requested(result)
        followers = {"coverage", "coverage_plan", *map(user, CANVAS_KEYS)}
        assert second | (first & followers) == followers and not second & first

        # and once they ran, nothing more (no loop)
        for key in CANVAS_KEYS | {dg.AssetKey("coverage"), dg.AssetKey("coverage_plan")}:
            inst.report_runless_asset_event(dg.AssetMaterialization(key))
        result = dg.evaluate_automation_conditions(defs=defs, instance=inst, cursor=result.cursor)
        assert result.total_requested == 0
        assert dg.evaluate_automation_conditions(defs=defs, instance=inst, cursor=result.cursor).total_requested == 0


def test_a_new_csv_materialized_by_hand_brings_its_mapping_into_source_series_with_observations():
    with dg.instance_for_test() as inst:
        for key in GRAPH.materializable_asset_keys:
            inst.report_runless_asset_event(dg.AssetMaterialization(key))
        result = dg.evaluate_automation_conditions(defs=defs, instance=inst)
        inst.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey("raw_tabular")))
        result = dg.evaluate_automation_conditions(defs=defs, instance=inst, cursor=result.cursor)
        # the mapping files are read by source_series: it is requested with observations (one run, in order)
        assert {"source_series", "observations"} <= requested(result)
        assert not requested(result) & {user(k) for k in TRAIN_KEYS}


def test_a_fresh_instance_requests_nothing_and_a_lone_source_waits_for_its_missing_siblings():
    with dg.instance_for_test() as inst:
        result = dg.evaluate_automation_conditions(defs=defs, instance=inst)
        assert result.total_requested == 0
        inst.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey("raw_fred")))
        result = dg.evaluate_automation_conditions(defs=defs, instance=inst, cursor=result.cursor)
        assert "observations" not in requested(result)  # fields, bundled_history, ... were never materialized
        assert not requested(result) & {user(k) for k in TRAIN_KEYS | CANVAS_KEYS}


def test_canvases_wait_while_a_blocking_observations_check_fails():
    with dg.instance_for_test() as inst:
        for key in GRAPH.materializable_asset_keys:
            inst.report_runless_asset_event(dg.AssetMaterialization(key))
        result = dg.evaluate_automation_conditions(defs=defs, instance=inst)
        inst.report_runless_asset_event(dg.AssetMaterialization(OBS))
        blocking = sorted((k for k in GRAPH.get(OBS).check_keys if GRAPH.get(k).blocking), key=user)
        for check in GRAPH.get(OBS).check_keys:
            inst.report_runless_asset_event(dg.AssetCheckEvaluation(
                asset_key=OBS, check_name=check.name, passed=check != blocking[0]))
        result = dg.evaluate_automation_conditions(defs=defs, instance=inst, cursor=result.cursor)
        assert not requested(result) & {"coverage", "coverage_plan", *map(user, CANVAS_KEYS)}


def test_a_run_that_planned_the_followers_is_not_followed_again():
    """The shape of a refresh job (source -> observations with a blocking check -> canvas) with the same
    conditions: one run of all three leaves nothing to request; the source alone is followed."""
    @dg.asset
    def raw():
        return None

    @dg.asset(deps=[raw], automation_condition=FOLLOW_UPSTREAM,
              check_specs=[dg.AssetCheckSpec("valid", asset="obs", blocking=True)])
    def obs():
        yield dg.MaterializeResult()
        yield dg.AssetCheckResult(check_name="valid", passed=True)

    @dg.asset(deps=[obs], automation_condition=FOLLOW_CHECKED)
    def canvas():
        return None

    assets = [raw, obs, canvas]
    with dg.instance_for_test() as inst:
        assert dg.materialize(assets, instance=inst).success
        result = dg.evaluate_automation_conditions(defs=assets, instance=inst)
        assert dg.materialize(assets, instance=inst).success  # a refresh job run
        result = dg.evaluate_automation_conditions(defs=assets, instance=inst, cursor=result.cursor)
        assert result.total_requested == 0
        assert dg.materialize([raw], instance=inst).success  # a person materializes the source alone
        result = dg.evaluate_automation_conditions(defs=assets, instance=inst, cursor=result.cursor)
        assert "obs" in requested(result)


# --- training policy ----------------------------------------------------------------------------------

def test_training_schedule_is_stopped_unless_the_policy_asks_for_it(monkeypatch):
    assert defs.get_repository_def().get_schedule_def("weekly_training").default_status == \
        training_automation.weekly_training_schedule("manual").default_status == dg.DefaultScheduleStatus.STOPPED
    monkeypatch.setenv("GWM_TRAINING_POLICY", "weekly")
    assert training_automation.weekly_training_schedule().default_status == dg.DefaultScheduleStatus.RUNNING
    monkeypatch.setenv("GWM_TRAINING_POLICY", "manual")
    assert training_automation.weekly_training_schedule().default_status == dg.DefaultScheduleStatus.STOPPED
    monkeypatch.setenv("GWM_TRAINING_POLICY", "daily")
    with pytest.raises(ValueError, match="GWM_TRAINING_POLICY"):
        training_automation.weekly_training_schedule()
    monkeypatch.setenv("GWM_AUTOMATION", "off")  # the automation switch does not decide training
    assert training_automation.weekly_training_schedule("weekly").default_status == dg.DefaultScheduleStatus.RUNNING


def test_training_runs_started_by_the_policy_say_so(instance):
    schedule = training_automation.weekly_training_schedule("weekly")
    when = datetime(2025, 3, 8, 2, 0, tzinfo=NY)
    [request] = schedule.evaluate_tick(dg.build_schedule_context(instance=instance,
                                                                 scheduled_execution_time=when)).run_requests
    assert schedule.job_name == "train_curriculum"
    assert request.tags[policy.POLICY_TAG] == "weekly_training"
    assert request.run_key == f"weekly_training:{when.isoformat()}"
