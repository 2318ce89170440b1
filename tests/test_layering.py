"""The layering as contracts: import-linter's contracts (``[tool.importlinter]`` in pyproject.toml) hold, no module
takes part in an import cycle, and adding a forbidden import or a cycle to a copy of the packages is caught."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("gwm_model", "gwm_assets")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the packages under ``root`` with the project's contracts."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo", str(REPO / "pyproject.toml")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)


def import_cycles(*packages: str) -> list[list[str]]:
    """Every set of modules that import each other, directly or through others (strongly connected components of
    more than one module, or a module importing itself), counting imports inside functions and under
    ``TYPE_CHECKING``."""
    graph = grimp.build_graph(*packages, exclude_type_checking_imports=False, cache_dir=None)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph.modules):  # Tarjan, iteratively (no recursion limit on deep chains)
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1 or module in graph.find_modules_directly_imported_by(module):
                    found.append(sorted(component))
    return found


@pytest.fixture
def packages_copy(tmp_path) -> Path:
    """A copy of both packages' sources, to break on purpose."""
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.yaml"))
    return tmp_path


def add_import(root: Path, module: str, statement: str) -> None:
    path = root / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n\ndef _added():\n    {statement}\n")


def test_every_layering_contract_is_kept():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert len(contracts) >= 4
    assert f"Contracts: {len(contracts)} kept, 0 broken." in result.stdout, result.stdout


def test_no_import_cycles_in_either_package():
    assert import_cycles(*PACKAGES) == []


@pytest.mark.parametrize(("module", "statement", "contract"), [
    ("gwm_model.schema.spec", "import gwm_assets.warehouse.clock", "gwm_model is a pure library"),
    ("gwm_model.canvas.layout", "import dagster", "gwm_model is a pure library"),
    ("gwm_model.canvas.layout", "from gwm_model.nn import model", "gwm_model: schema below canvas"),
    ("gwm_model.training.trainer", "import gwm_model.curriculum.spec", "gwm_model: schema below canvas"),
    ("gwm_assets.warehouse.ledger", "import gwm_assets.sources.base", "gwm_assets: warehouse at the bottom"),
    ("gwm_assets.sources.refresh", "import gwm_assets.observations.build", "gwm_assets: warehouse at the bottom"),
    ("gwm_assets.training.node_run", "import gwm_assets.definitions", "gwm_assets: warehouse at the bottom"),
    ("gwm_assets.definitions", "import gwm_assets.ops.cli", "gwm_assets: warehouse at the bottom"),
    ("gwm_assets.warehouse.clock", "import dagster", "the warehouse plumbing works without Dagster"),
])
def test_a_forbidden_import_breaks_its_contract(packages_copy, module, statement, contract):
    add_import(packages_copy, module, statement)
    result = lint_imports(packages_copy)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts")[-1]
    assert contract in broken, result.stdout
    assert module in broken  # the report names the importer


def test_a_cycle_added_inside_one_layer_is_found(packages_copy):
    # a cycle no layer contract forbids: two modules of the same folder importing each other
    add_import(packages_copy, "gwm_assets.warehouse.errors", "import gwm_assets.warehouse.clock")
    add_import(packages_copy, "gwm_assets.warehouse.clock", "import gwm_assets.warehouse.errors")
    sys.path.insert(0, str(packages_copy))
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if name.split(".")[0] in PACKAGES}
    try:
        cycles = import_cycles(*PACKAGES)
    finally:
        sys.path.remove(str(packages_copy))
        for name in [n for n in sys.modules if n.split(".")[0] in PACKAGES]:
            del sys.modules[name]
        sys.modules.update(saved)
    assert ["gwm_assets.warehouse.clock", "gwm_assets.warehouse.errors"] in cycles
