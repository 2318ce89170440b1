"""The Dagster UI in a real browser: ``gwm ui`` (webserver + daemon) and headless Debian Chromium.

One temporary DAGSTER_HOME and warehouse for the module. The UI shows the four groups and every
training asset with its curriculum lineage; a person launches ``bundled_history`` from its page and
the run succeeds, writing real rows. Restarted on a broken curriculum file, the UI names the file
and the problem while the earlier run and the warehouse rows are still there. Screenshots go to
``build/ui-test/`` (or ``GWM_UI_ARTIFACTS``).

Needs Chromium at /usr/bin/chromium (Debian's ``chromium``; ``make test-ui`` installs it) and the
``playwright`` package (no browser download: Playwright drives the system Chromium).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from gwm_assets.resources.paths import curriculum_path
from gwm_model.curriculum import load_curriculum
from tests.asset_graph import SNAPSHOT
from tests.ui.browser import CHROMIUM, CHROMIUM_ARGS, DagsterUi, free_port, gwm_command

pytestmark = pytest.mark.ui

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("GWM_UI_ARTIFACTS", REPO / "build" / "ui-test"))
LOCATION = "gwm_assets.definitions"
NODE_NAME = "[class*='AssetNode_assetName'] [data-tooltip]"  # the name on each card of a lineage graph
# Assets per group as the reviewed snapshot holds them (tests/test_asset_graph_snapshot checks it against the
# definitions), so a new asset changes one reviewed file, not a second hand-kept count here.
ASSETS = json.loads(SNAPSHOT.read_text())["assets"]
GROUP_COUNTS = Counter(a["group"] for a in ASSETS.values())


def _downstream_names(key: str) -> set[str]:
    """The names on the cards of ``key``'s children (an asset card shows the last part of its key)."""
    return {child.split("/")[-1] for child, a in ASSETS.items() if key in a["deps"]}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Environment of the UI under test: its own instance directory and warehouse, no credentials."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}. Fix: `make test-ui` installs Debian's chromium "
                    "(apt-get install chromium), or set GWM_CHROMIUM")
    root = tmp_path_factory.mktemp("ui")
    home = root / "dagster_home"
    (home / ".nux").mkdir(parents=True)
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    (home / ".nux" / "nux.yaml").write_text("seen: 1\n")  # the one-time newsletter dialog would cover the page
    env = {k: v for k, v in os.environ.items() if k not in ("FRED_API_KEY", "GWM_LIVE", "GWM_CURRICULUM")}
    env.update(DAGSTER_HOME=str(home), GWM_WAREHOUSE=str(root / "warehouse" / "gwm.duckdb"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return {"root": root, "env": env, "warehouse": root / "warehouse" / "gwm.duckdb"}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def ui(site):
    server = DagsterUi(site["env"], site["root"] / "ui.log")
    try:
        server.wait_loaded()
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1920, "height": 1200})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def _names_on_graph(page) -> list[str]:
    page.locator(NODE_NAME).first.wait_for()
    page.wait_for_timeout(300)  # cards render in one pass after the layout
    return page.locator(NODE_NAME).evaluate_all("els => els.map(e => e.getAttribute('data-tooltip'))")


def test_asset_graph_shows_groups_and_every_training_node_with_its_lineage(ui, page):
    page.goto(f"{ui.url}/asset-groups")
    page.get_by_text("training", exact=True).first.wait_for()
    page.wait_for_timeout(1000)
    text = page.inner_text("body")
    for group, count in GROUP_COUNTS.items():
        shown = re.search(rf"^{group}\n{count}( assets\b.*)?$", text, re.M)
        assert shown, f"group {group} with {count} assets is not on the graph"
    page.screenshot(path=str(ARTIFACTS / "asset_graph.png"))

    curriculum = load_curriculum(curriculum_path())
    for name in curriculum.order():
        node = curriculum[name]
        page.goto(f"{ui.url}/assets/train/{name}?view=lineage")  # nearest neighbours: parents and children
        shown = _names_on_graph(page)
        upstream = list(node.parents) or ["trunk"]
        children = {c for c in curriculum.order() if name in curriculum[c].parents}
        assert children <= _downstream_names(f"train/{name}"), f"train/{name}: snapshot lacks children {children}"
        expected = {name, *upstream, *_downstream_names(f"train/{name}")}  # `name` twice: canvas/ and train/
        assert shown.count(name) == 2, f"train/{name}: its canvas is not shown upstream ({shown})"
        assert set(upstream) <= set(shown), f"train/{name}: parents {upstream} not all shown ({shown})"
        assert set(shown) <= expected, f"train/{name}: unrelated assets on its lineage ({set(shown) - expected})"
        if name == "full_integration":
            page.screenshot(path=str(ARTIFACTS / "full_integration_lineage.png"))


def test_materialize_a_source_from_the_ui(ui, page, site):
    page.goto(f"{ui.url}/assets/bundled_history")
    page.get_by_text("Never materialized").first.wait_for()
    page.locator("button", has_text="Materialize").first.click()
    toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))
    toast.wait_for()
    short_id = re.search(r"[0-9a-f]{8}", toast.inner_text()).group(0)
    page.get_by_role("link", name="View").or_(page.get_by_role("button", name="View")).first.click()
    page.wait_for_url(re.compile(rf"/runs/{short_id}"))
    page.get_by_text("Success", exact=True).first.wait_for(timeout=240_000)
    page.screenshot(path=str(ARTIFACTS / "bundled_history_run.png"))

    page.goto(f"{ui.url}/assets/bundled_history")
    page.get_by_text("items_loaded").first.wait_for()  # the materialization's metadata is on the asset page
    page.screenshot(path=str(ARTIFACTS / "bundled_history_asset.png"))

    with duckdb.connect(str(site["warehouse"]), read_only=True) as conn:
        run_ids = [r[0] for r in conn.execute(
            "SELECT run_id FROM refresh_log WHERE source = 'bundled' AND status = 'ok'").fetchall()]
        rows = conn.execute("SELECT count(*) FROM raw_fred").fetchone()[0]
    assert run_ids and all(r.startswith(short_id) for r in run_ids)
    assert rows > 1000, "the UI run should have written the embedded history"
    site["rows"], site["run"] = rows, short_id


def test_broken_curriculum_is_named_in_the_ui_and_nothing_is_lost(ui, browser, site):
    assert "run" in site, "needs the run of test_materialize_a_source_from_the_ui"
    ui.stop()  # the module's server; this test starts the same instance on a broken curriculum
    broken = site["root"] / "broken.yaml"
    broken.write_text(curriculum_path().read_text().replace(
        "parents: [basic_finance, basic_economics]", "parents: [basic_finance, basic_economix]"))
    env = {**site["env"], "GWM_CURRICULUM": str(broken)}
    server = DagsterUi(env, site["root"] / "ui-broken.log")
    page = browser.new_page(viewport={"width": 1920, "height": 1200})
    try:
        entry = server.wait_loaded()
        assert entry["locationOrLoadError"]["__typename"] == "PythonError"
        page.goto(f"{server.url}/locations")
        page.get_by_text("View error").first.click()
        page.get_by_text("basic_economix").first.wait_for()
        dialog = page.inner_text("body")
        assert str(broken) in dialog and "is not declared" in dialog
        page.wait_for_timeout(800)  # the dialog fades in
        page.screenshot(path=str(ARTIFACTS / "broken_curriculum.png"))
        page.keyboard.press("Escape")

        page.goto(f"{server.url}/runs")  # the run history of the instance is still there
        page.get_by_text(site["run"]).first.wait_for()
        assert "Success" in page.inner_text("body")
    finally:
        page.close()
        server.stop()
    assert "the curriculum does not load" in server.log.read_text()
    with duckdb.connect(str(site["warehouse"]), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM raw_fred").fetchone()[0] == site["rows"]


def test_gwm_ui_refuses_a_busy_port_and_a_missing_dagster_home(site, tmp_path):
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        busy = subprocess.run([gwm_command(), "ui", "--port", str(port)], env=site["env"], capture_output=True,
                              text=True, timeout=60)
    assert busy.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in busy.stderr and "--port" in busy.stderr

    missing = tmp_path / "no_such_home"
    gone = subprocess.run([gwm_command(), "ui", "--port", str(free_port())],
                          env={**site["env"], "DAGSTER_HOME": str(missing)}, capture_output=True, text=True,
                          timeout=60)
    assert gone.returncode == 2
    assert f"DAGSTER_HOME={missing} is not an existing directory" in gone.stderr
    assert not missing.exists()
