"""Whether a source is live is decided in one place (``SourceSettings.offline_reason``), and the source assets,
their schedules and the freshness check all follow it: here the case where they used to disagree, EDGAR with
``GWM_LIVE=1`` but no SEC user agent, through a real materialization, a schedule tick and the freshness reader."""

from __future__ import annotations

import shutil

import dagster as dg
import duckdb
import pytest
import responses

from gwm_assets.definitions import defs
from gwm_assets.resources.sources import SourceSettings
from gwm_assets.sources.automation import edgar_filings
from gwm_assets.sources.freshness import read_freshness
from gwm_assets.warehouse.clock import utcnow
from tests.conftest import REPO
from tests.test_sources_pipeline import run, sql

CASES = [  # (settings, source, the start of the reason it is offline; None when live)
    ({"live": False, "fred_api_key": ""}, "fred", "FRED_API_KEY is not set"),
    ({"live": False, "fred_api_key": "k"}, "fred", None),
    ({"live": False}, "yahoo", "GWM_LIVE=1 is not set"),
    ({"live": True}, "news", None),
    ({"live": True, "sec_user_agent": "me me@example.org"}, "earnings", None),
    ({"live": True, "sec_user_agent": "  "}, "earnings", "SEC_USER_AGENT is empty"),
    ({"live": False}, "tabular", None),
]


@pytest.mark.parametrize(("settings", "source", "expected"), CASES)
def test_offline_reason_names_the_setting_that_turns_a_source_on(settings, source, expected):
    reason = SourceSettings(**settings).offline_reason(source)
    assert (reason is None) == (expected is None)
    if expected is not None:
        assert reason.startswith(expected)


def test_edgar_without_a_user_agent_is_offline_for_asset_schedule_and_check_alike(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    warehouse = home / "w.duckdb"
    with responses.RequestsMock():  # any request to the SEC would fail the test: none may be made
        result = run(home, warehouse, ["fields", "source_series", "raw_earnings"], live=True, sec_user_agent="")
    assert result.success
    status, message = sql(warehouse, "SELECT status, message FROM refresh_log WHERE source = 'earnings'")[0]
    assert status == "skipped" and "SEC_USER_AGENT" in message

    settings = SourceSettings(live=True, sec_user_agent="")
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        (standing,) = read_freshness(conn, settings, utcnow(), ["earnings"])
    assert standing.state == "offline" and "SEC_USER_AGENT is empty" in standing.summary

    with dg.instance_for_test() as instance:
        tick = edgar_filings.evaluate_tick(dg.build_sensor_context(instance=instance, resources={
            "settings": settings, "world": defs.resources["world"]}))
    assert "SEC_USER_AGENT is empty" in tick.skip_message
