"""The README tutorial, run as written: every command of its code blocks, in order, in a small project.

The project is a temporary directory laid out like a checkout (``.venv`` links to this one's) whose
curriculum is the standard one with a tiny profile and whose data is a few synthetic CSV series, so
the tutorial runs in a couple of minutes. ``make run`` (step 1) is stood in for by an in-process
materialization of the same graph, and ``make ui`` (step 2) is what ``tests/ui`` drives in a browser;
every other line runs in bash from the project directory. FRED is a local HTTP server speaking the
FRED API (``FRED_API_URL``, unpaced: ``FRED_REQUESTS_PER_MINUTE=0``), so step 4's refresh is the real code
path with the network faked. The
Dagster commands run their steps in-process (``GWM_EXECUTOR=in_process``): the same steps, without a
process start and a code-location load for each of them (measured with a benchmark sharing the two
cores: 464 s with the multiprocess executor, 245 s in-process).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from gwm_assets.canvases.assets import canvas_assets
from gwm_assets.resources.sources import SourceSettings
from gwm_assets.resources.training import TrainingResource
from gwm_assets.resources.warehouse import WarehouseResource
from gwm_assets.resources.world import WorldSchemaResource
from gwm_assets.training.assets import training_assets
from gwm_model.curriculum import STANDARD_CURRICULUM, load_curriculum
from tests.sources.fakes import FakeFred
from tests.test_training_assets import BASE, TINY, UNFILLED, write_tabular

REPO = Path(__file__).resolve().parent.parent
STAND_INS = {"make run": "the in-process materialization of the `project` fixture (and `make run` itself)",
             "make ui": "tests/ui/test_dagster_ui.py"}
# the ten-year yield and WTI crude, weekly through 2018 (every FRED-fed tier-0 node needs some of its fields)
FRED_SERIES = {key: [(f"2018-{m:02d}-{d:02d}", f"2018-{m:02d}-{d + 1:02d}", f"{level + 0.05 * m:.2f}")
                     for m in range(1, 13) for d in (5, 12, 19, 26)]
               for key, level in (("DGS10", 2.4), ("DCOILWTICO", 60.0))}
FRED_ROWS = sum(len(rows) for rows in FRED_SERIES.values())


def tutorial_blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block under the README's ``## Tutorial``, in order."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Tutorial\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, re.S)


class FredServer:
    """A local stand-in for https://api.stlouisfed.org/fred: ``series/observations`` as FRED's XML."""

    def __init__(self, series):
        fake, self.requests = FakeFred(series), []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(handler):  # noqa: N805 - the handler instance; `self` is the server wrapper
                self.requests.append(handler.path)
                body = fake.urlopen("https://fred.invalid" + handler.path).read()
                handler.send_response(200)
                handler.send_header("Content-Type", "text/xml")
                handler.end_headers()
                handler.wfile.write(body)

            def log_message(handler, *args):  # noqa: N805
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/fred"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project after step 1: the data assets, the canvases and the checkpoints step 6 needs, on small data
    with a tiny profile."""
    proj = tmp_path_factory.mktemp("tutorial")
    (proj / ".venv").symlink_to(REPO / ".venv")
    for folder in ("curricula", "tabular", "dagster_home", "warehouse"):
        (proj / folder).mkdir()
    # the standard file as written (step 6 appends a node to it) with a tiny profile as the default
    tiny = textwrap.indent(yaml.safe_dump({"tiny": TINY}, sort_keys=False), "  ")
    text = STANDARD_CURRICULUM.read_text()
    assert "default_profile: cpu\nprofiles:\n" in text
    text = text.replace("default_profile: cpu\nprofiles:\n", "default_profile: tiny\nprofiles:\n" + tiny)
    for name in UNFILLED:  # the small tabular data has nothing for them (see tests/test_training_assets.py)
        text = re.sub(rf"(- name: {name}\n(?:    .*\n)*?    data_sources: )\[.*\]", r"\1[]", text, count=1)
    (proj / "curricula" / "standard.yaml").write_text(text)
    write_tabular(proj / "tabular")
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", proj / "dagster_home" / "dagster.yaml")

    curriculum = load_curriculum(proj / "curricula" / "standard.yaml")
    warehouse = proj / "warehouse" / "gwm.duckdb"
    resources = {"warehouse": WarehouseResource(path=str(warehouse)), "world": WorldSchemaResource(schema_path=""),
                 "settings": SourceSettings(live=False, fred_api_key="", tabular_dir=str(proj / "tabular")),
                 "training": TrainingResource(checkpoints_path=str(proj / "warehouse" / "checkpoints"), profile="",
                                              torch_threads=0)}
    assets = [*BASE, *canvas_assets(curriculum), *training_assets(curriculum)]
    # every canvas, and of the checkpoints only those step 6 builds on (the others would only cost time)
    selection = ["fields", "source_series", "raw_tabular", "observations", "coverage",
                 *(f"canvas/{n}" for n in curriculum.nodes), "train/trunk", "train/basic_finance",
                 "train/basic_economics"]
    with dg.DagsterInstance.from_config(str(proj / "dagster_home")) as instance:
        result = dg.materialize(assets, resources=resources, instance=instance, selection=selection)
    assert result.success

    fred = FredServer(FRED_SERIES)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GWM_", "FRED_")) and k not in ("DAGSTER_HOME", "SEC_USER_AGENT")}
    env.update(GWM_HOME=str(proj), GWM_CURRICULUM=str(proj / "curricula" / "standard.yaml"),
               DAGSTER_HOME=str(proj / "dagster_home"), FRED_API_URL=fred.url,
               FRED_REQUESTS_PER_MINUTE="0",  # a local stand-in: no API limit (paced, ~250 series take 136 s)
               GWM_EXECUTOR="in_process")  # the same steps, without a process start-up and code load per step
    yield {"dir": proj, "env": env, "fred": fred, "warehouse": warehouse}
    fred.close()


def run_block(project, language: str, code: str) -> str:
    if language == "python":
        command = [".venv/bin/python", "-c", code]
    else:
        command = ["bash", "-euo", "pipefail", "-c", code]
    done = subprocess.run(command, cwd=project["dir"], env=project["env"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, (f"tutorial block failed ({done.returncode}):\n{code}\n"
                                  f"--- stderr:\n{done.stderr[-4000:]}")
    return done.stdout


def test_the_tutorial_runs_as_written(project):
    blocks = tutorial_blocks()
    assert [lang for lang, _ in blocks] == ["bash"] * 6 + ["python", "bash"], "the tutorial's blocks changed: update me"
    stood_in, outputs = [], []
    for language, code in blocks:
        lines = code.splitlines()
        stood_in += [line for line in lines if line.strip() in STAND_INS]
        runnable = "\n".join(line for line in lines if line.strip() not in STAND_INS)
        outputs.append(run_block(project, language, runnable) if runnable.strip() else "")
    assert stood_in == ["make run", "make ui"]
    first, ui, coverage, fred, csv, node, forecast, table = outputs

    assert "basic_finance" in first and "full_integration" in first  # step 1: the canvases table
    assert ui == ""
    assert re.search(r"^financial\s", coverage, re.M)  # step 3: layer coverage, then the yield-curve fields
    assert "financial.yield_curves.ten_year" in coverage

    # step 4: FRED asked with the key from the README, its rows in the warehouse and on the canvases
    queried = [urllib.parse.parse_qs(urllib.parse.urlparse(p).query) for p in project["fred"].requests]
    assert {q["series_id"][0] for q in queried} >= set(FRED_SERIES)
    assert all(q["api_key"] == ["your-key"] for q in queried)
    assert re.search(rf"^fred\s+ok\s+{FRED_ROWS}\s+{FRED_ROWS}\s+0\s*$", fred, re.M), fred
    with duckdb.connect(str(project["warehouse"]), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM observations WHERE source = 'fred' "
                            "AND field_path = 'financial.yield_curves.ten_year'").fetchone()[0] == 48
        (runs,) = conn.execute("SELECT count(*) FROM refresh_log WHERE source = 'fred'").fetchone()
    assert runs == 1

    # step 5: the CSV's six months, mapped onto the world field
    assert re.search(r"^country_us\.macro\.inflation\.rent_inflation\s+6\s+2018-01-31.*2018-06-30", csv, re.M), csv

    # step 6: the new node trained from its two parents
    assert re.search(r"^rates_and_prices\s+.*basic_finance.*basic_economics", node, re.M), node
    manifest = (project["dir"] / "warehouse" / "checkpoints" / "rates_and_prices" / "manifest.json").read_text()
    assert '"basic_finance"' in manifest and '"basic_economics"' in manifest

    # step 7: a forecast of the ten-year yield for the next two steps
    rows = [line.split() for line in forecast.strip().splitlines()]
    assert rows[0] == ["field_path", "date", "mean", "q05", "q95"] and len(rows) >= 3
    assert all(r[0] == "financial.yield_curves.ten_year" and float(r[3]) <= float(r[2]) <= float(r[4])
               for r in rows[1:])

    # step 8: the forecasts table (live rows of the trained node, backtest rows scored against observations) and
    # `gwm predict` with its picture
    live, scored, predicted = (part for part in table.split("\n(")[:3])
    live_rows = [line.split() for line in live.splitlines()[2:]]
    assert [r[0] for r in live_rows] == ["basic_finance", "basic_finance"] and [r[2] for r in live_rows] == ["1", "2"]
    assert all(float(r[4]) <= float(r[3]) <= float(r[5]) for r in live_rows)
    assert re.search(r"^basic_finance\s+1\s+\d+\s+[\d.]+\s+[\d.]+\s*$", scored, re.M), scored
    assert re.search(r"^node basic_finance, as of ", predicted, re.M), predicted
    assert (project["dir"] / "forecast.png").read_bytes()[:4] == b"\x89PNG"
    with duckdb.connect(str(project["warehouse"]), read_only=True) as conn:
        kinds = dict(conn.execute("SELECT kind, count(*) FROM forecasts GROUP BY kind").fetchall())
    assert kinds["live"] > 0 and kinds["backtest"] > kinds["live"]
