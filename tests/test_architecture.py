"""House rules that keep the layers apart."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def imported_modules(package: str, skip: tuple[str, ...] = ()) -> set[str]:
    names = set()
    for path in (REPO / package).rglob("*.py"):
        if path.relative_to(REPO).as_posix() in skip:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_gwm_model_is_a_pure_library():
    forbidden = {"dagster", "dagster_duckdb", "duckdb", "gwm_assets"}
    # the one exception: WorldModel.observe(<warehouse file>) reads its observations table read-only
    assert imported_modules("gwm_model", skip=("gwm_model/inference/frames.py",)) & forbidden == set()
    assert imported_modules("gwm_model") & forbidden == {"duckdb"}


def test_importing_gwm_model_pulls_in_no_dagster():
    code = ("import sys, gwm_model.schema, gwm_model.canvas; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('dagster', 'duckdb', 'great_expectations')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_starts_without_dagster():
    code = "import sys, gwm_assets.ops.cli; assert 'dagster' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_modules_stay_small():
    for package in ("gwm_model", "gwm_assets"):
        for path in (REPO / package).rglob("*.py"):
            assert len(path.read_text().splitlines()) <= 400, f"{path} is over 400 lines: split it"


def test_code_location_loads_without_great_expectations():
    """GX costs seconds to import: only check bodies import it, never the asset graph."""
    code = ("import sys, gwm_assets.definitions as d; assert d.defs.resolve_asset_graph(); "
            "assert 'great_expectations' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
