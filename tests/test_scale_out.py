"""Scale-out: the k8s executor and its deploy files, and the warehouse as Parquet files that DuckDB reads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pytest
import yaml

from gwm_assets.canvases.build import build_node_canvas
from gwm_assets.definitions import CHECKS
from gwm_assets.definitions import DATA_ASSETS as ASSETS
from gwm_assets.ops import preflight
from gwm_assets.resources.deployment import LOCAL_EXECUTOR, DeploymentError, executor_from_env, training_step_tags
from gwm_assets.resources.sources import SourceSettings
from gwm_assets.resources.warehouse import WarehouseResource
from gwm_assets.resources.world import WorldSchemaResource
from gwm_assets.warehouse import open_warehouse
from gwm_assets.warehouse.parquet import MANIFEST_FILE, ParquetWarehouseIncomplete, read_manifest
from gwm_model.curriculum import load_curriculum

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy" / "k8s"
GWM = str(Path(sys.executable).parent / "gwm")
BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("GWM_EXECUTOR", "GWM_K8S", "GWM_WAREHOUSE"))}


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, env={**BASE_ENV, **env}, capture_output=True, text=True, timeout=120, cwd=REPO)


# ---------------------------------------------------------------- executor selection and deploy files


def test_default_is_the_local_multiprocess_executor_and_imports_no_dagster_k8s():
    code = ("import sys, gwm_assets.definitions as d; "
            "print(d.defs.resolve_implicit_global_asset_job_def().executor_def.name, 'dagster_k8s' in sys.modules)")
    result = run([sys.executable, "-c", code])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["gwm_multiprocess", "False"]
    assert executor_from_env({}) is LOCAL_EXECUTOR
    assert executor_from_env({"GWM_EXECUTOR": " Multiprocess "}) is LOCAL_EXECUTOR


def test_in_process_runs_every_step_in_the_runs_own_process():
    code = ("import gwm_assets.definitions as d; "
            "print(d.defs.resolve_implicit_global_asset_job_def().executor_def.name)")
    result = run([sys.executable, "-c", code], GWM_EXECUTOR="in_process")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["in_process"]
    assert executor_from_env({"GWM_EXECUTOR": "In_Process"}) is dg.in_process_executor


def test_an_unknown_executor_fails_with_the_choices():
    with pytest.raises(DeploymentError, match=r"GWM_EXECUTOR='bogus' is not an executor gwm knows.*multiprocess.*k8s"):
        executor_from_env({"GWM_EXECUTOR": "bogus"})


def test_preflight_accepts_the_shipped_deploy_files_for_the_asset_job():
    """`GWM_EXECUTOR=k8s python -m gwm_assets.ops.preflight deploy/k8s`: Definitions loaded with the k8s executor."""
    result = run([sys.executable, "-m", "gwm_assets.ops.preflight", "deploy/k8s"], GWM_EXECUTOR="k8s")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "executor: k8s for job __ASSET_JOB"
    assert "deploy/k8s/run_config.yaml: valid run config" in lines
    pods = {line.split(" step pod")[0]: json.loads(line.split("resources: ")[1])
            for line in lines if "step pod" in line}
    assert "train/trunk" in pods and all(p["requests"] == {"cpu": "1", "memory": "4Gi"} for p in pods.values())
    # the training group: 13 training steps on a GPU each, then the forecasts (inference on the CPU)
    forecasts = pods.pop("forecasts")
    assert len(pods) == 13 and all(p["limits"]["nvidia.com/gpu"] == "1" for p in pods.values())
    assert "nvidia.com/gpu" not in forecasts.get("limits", {})


def test_preflight_rejects_misspelled_keys_and_names_them(tmp_path):
    run_config = (DEPLOY / "run_config.yaml").read_text().replace("max_concurrent:", "max_concurent:")
    instance = (DEPLOY / "dagster.yaml").read_text().replace("job_namespace: gwm", "job_namespce: gwm")
    (tmp_path / "run_config.yaml").write_text(run_config)
    (tmp_path / "dagster.yaml").write_text(instance)
    result = run([sys.executable, "-m", "gwm_assets.ops.preflight", str(tmp_path)], GWM_EXECUTOR="k8s")
    assert result.returncode == 1
    assert 'unexpected config entry "max_concurent" at path root:execution:config' in result.stderr
    assert 'run_launcher.config: Received unexpected config entry "job_namespce"' in result.stderr
    result = run([sys.executable, "-m", "gwm_assets.ops.preflight", "deploy/k8s"])
    assert result.returncode == 1 and "GWM_EXECUTOR is not k8s" in result.stderr


@pytest.fixture(scope="module")
def k8s_settings():
    """The executor config of deploy/k8s/run_config.yaml (validated for a k8s job) and the run launcher's."""
    from dagster_k8s import k8s_job_executor

    @dg.asset
    def probe() -> None: ...

    job = dg.Definitions(assets=[probe], executor=k8s_job_executor).resolve_implicit_global_asset_job_def()
    errors, executor = preflight.check_run_config(job, DEPLOY / "run_config.yaml")
    instance_errors, launcher = preflight.check_instance(DEPLOY)
    assert errors == instance_errors == [] and executor["max_concurrent"] == 8
    assert preflight.check_shared_paths(launcher, "dagster.yaml") == []
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert instance["concurrency"]["pools"]["default_limit"] == 1  # one warehouse writer at a time, across pods
    return job, executor, launcher


def test_a_training_step_pod_asks_for_gpus_on_top_of_the_step_defaults(k8s_settings):
    _, executor, launcher = k8s_settings
    tags = training_step_tags({"GWM_EXECUTOR": "k8s", "GWM_K8S_GPUS": "2"})

    @dg.asset(group_name="training", op_tags=tags)
    def train_probe() -> None: ...

    pod = preflight.step_job(launcher, executor, train_probe.op.tags).spec.template.spec  # as dagster-k8s builds it
    resources = pod.containers[0].resources
    assert resources.limits == {"memory": "16Gi", "nvidia.com/gpu": "2"}
    assert resources.requests == {"cpu": "1", "memory": "4Gi"}
    assert [t.key for t in pod.tolerations] == ["nvidia.com/gpu"]
    assert [m.mount_path for m in pod.containers[0].volume_mounts] == ["/data"]
    env = {e.name: e.value for e in pod.containers[0].env}
    assert env["GWM_EXECUTOR"] == "k8s" and env["GWM_WAREHOUSE_PARQUET"] == "/data/warehouse/parquet"
    untagged = preflight.step_job(launcher, executor, {}).spec.template.spec.containers[0].resources
    assert "nvidia.com/gpu" not in untagged.limits
    assert training_step_tags({}) == {} and training_step_tags({"GWM_EXECUTOR": "k8s", "GWM_K8S_GPUS": "0"}) == {}
    with pytest.raises(DeploymentError, match="GWM_K8S_GPUS='one'"):
        training_step_tags({"GWM_EXECUTOR": "k8s", "GWM_K8S_GPUS": "one"})


def test_a_misspelled_kubernetes_field_or_a_path_off_the_volume_is_rejected(k8s_settings):
    job, executor, launcher = k8s_settings
    broken = {**launcher, "volumes": [{"name": "gwm-data", "persistent_volume_claim": {"claim_nam": "gwm-data"}}]}
    with pytest.raises(Exception, match="claim_nam"):
        preflight.step_job(broken, executor, {})
    moved = {**launcher, "env_vars": [v.replace("/data/", "/scratch/") for v in launcher["env_vars"]]}
    errors = preflight.check_shared_paths(moved, "dagster.yaml")
    assert len(errors) == 2 and "GWM_WAREHOUSE=/scratch/warehouse/gwm.duckdb is not under a mounted volume" in errors[0]
    bad = {"execution": {"config": {"job_namespace": "gwm", "step_k8s_config": {"container_cfg": {}}}}}
    with pytest.raises(dg.DagsterInvalidConfigError, match="container_cfg"):
        dg.validate_run_config(job, bad)


# ---------------------------------------------------------------- the warehouse on Parquet

CURRICULUM = """
canvas: {frequency: weekly, start: 2023-01-01, train_fraction: 0.5}
nodes:
  - {name: rates, tier: 0, include: [financial.yield_curves, country_us.macro.labor], data_sources: [tabular]}
"""


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Real writers (fields, catalog, tabular source, observations, coverage) with GWM_WAREHOUSE_PARQUET set."""
    home = tmp_path_factory.mktemp("scale_out")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    folder = home / "tabular"
    folder.mkdir()
    (folder / "rates.csv").write_text("day,ten_year\n" + "".join(f"2023-{m:02d}-{d:02d},{3 + m / 10 + d / 100:.2f}\n"
                                                                 for m in range(1, 10) for d in (2, 9, 16)))
    (folder / "rates.yaml").write_text("dataset: rates\npath: rates.csv\ndate_column: day\ncolumns:\n"
                                       "  ten_year: {field: financial.yield_curves.ten_year, frequency: daily}\n")
    (folder / "jobs.csv").write_text("day,unrate\n" + "".join(f"2023-{m:02d}-01,3.{m}\n" for m in range(1, 10))
                                     + "2023-10-01,oops\n")  # one unparseable value: a quarantine row
    (folder / "jobs.yaml").write_text("dataset: jobs\npath: jobs.csv\ndate_column: day\ncolumns:\n"
                                      "  unrate: {field: country_us.macro.labor.unemployment_rate, frequency: monthly,"
                                      " release_lag_days: 35}\n")
    (home / "curriculum.yaml").write_text(CURRICULUM)
    warehouse, parquet = home / "w.duckdb", home / "parquet"
    resources = {"warehouse": WarehouseResource(path=str(warehouse), parquet_dir=str(parquet)),
                 "world": WorldSchemaResource(schema_path=""),
                 "settings": SourceSettings(live=False, fred_api_key="", plain_requests=True, tabular_dir=str(folder))}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dg.materialize([*ASSETS, *CHECKS], resources=resources, instance=instance,
                                selection=["fields", "source_series", "raw_tabular", "observations", "coverage"])
    assert result.success
    return home, warehouse, parquet, result


def file_tables(warehouse: Path) -> dict[str, int]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        names = [r[0] for r in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


def test_writers_publish_every_table_and_the_views_equal_the_file(published):
    _, warehouse, parquet, _ = published
    manifest = read_manifest(parquet)
    tables = file_tables(warehouse)
    assert {t: e["rows"] for t, e in manifest["tables"].items()} == tables
    assert tables["observations"] == 36 and tables["quarantine"] >= 1
    assert set(manifest["views"]) == {"field_coverage", "layer_coverage"}
    assert manifest["tables"]["observations"]["partition_by"] == ["source"]
    assert (parquet / manifest["tables"]["observations"]["path"] / "source=tabular").is_dir()
    with open_warehouse(warehouse, read_only=True, parquet_dir=parquet) as conn:
        conn.execute(f"ATTACH '{warehouse}' AS src (READ_ONLY)")
        for table in [*tables, "field_coverage", "layer_coverage"]:
            columns = [conn.execute(f"SELECT column_name, column_type FROM (DESCRIBE {t})").fetchall()
                       for t in (table, f"src.{table}")]
            assert columns[0] == columns[1]
            for a, b in ((table, f"src.{table}"), (f"src.{table}", table)):
                extra = conn.execute(f"SELECT count(*) FROM (FROM {a} EXCEPT ALL FROM {b})").fetchone()[0]
                assert extra == 0, f"{a} has {extra} rows that {b} lacks"


def test_checks_read_the_parquet_views_without_the_duckdb_file(published):
    """A check step in its own pod: only the Parquet export is there, the DuckDB file is not."""
    home, _, parquet, _ = published
    resources = {"warehouse": WarehouseResource(path=str(home / "absent.duckdb"), parquet_dir=str(parquet)),
                 "world": WorldSchemaResource(schema_path=""),
                 "settings": SourceSettings(live=False, fred_api_key="", plain_requests=True)}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dg.materialize([*ASSETS, *CHECKS], resources=resources, instance=instance, raise_on_error=False,
                                selection=dg.AssetSelection.checks_for_assets("raw_tabular", "observations"))
    assert result.success and not result.get_asset_materialization_events()
    evaluations = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    expectations = [e for (_, name), e in evaluations.items() if name not in ("quarantine_empty", "freshness")]
    assert len(expectations) > 5 and all(e.passed and e.metadata["rows_validated"].value == 36 for e in expectations)
    held = evaluations[("observations", "quarantine_empty")]
    assert not held.passed and held.metadata["rows_held"].value == 1  # the unparseable value, read from Parquet
    assert not (home / "absent.duckdb").exists()


def test_export_cli_writes_the_same_versions_and_again_writes_nothing(published, tmp_path):
    """`gwm warehouse export DIR`: idempotent; unchanged tables keep their files."""
    _, warehouse, parquet, _ = published
    out = tmp_path / "export"
    first = run([GWM, "warehouse", "export", str(out), "--warehouse", str(warehouse)])
    assert first.returncode == 0, first.stderr
    manifest = read_manifest(out)
    assert {t: e["version"] for t, e in manifest["tables"].items()} == \
        {t: e["version"] for t, e in read_manifest(parquet)["tables"].items()}
    assert "written, 0 unchanged" in first.stdout.splitlines()[-1]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    text = (out / MANIFEST_FILE).read_text()
    second = run([GWM, "warehouse", "export", str(out)], GWM_WAREHOUSE=str(warehouse))
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[-1].endswith(f"0 written, {len(manifest['tables'])} unchanged; manifest "
                                                   "unchanged)")
    assert (out / MANIFEST_FILE).read_text() == text
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_a_write_republishes_only_the_changed_table_and_keeps_the_previous_version(published, tmp_path):
    _, warehouse, parquet, _ = published
    copy, out = tmp_path / "w.duckdb", tmp_path / "parquet"
    shutil.copy(warehouse, copy)
    (out / "refresh_log" / ".tmp-0123-abcd").mkdir(parents=True)  # an export killed before its first manifest
    (out / ".export.lock").touch()
    with open_warehouse(copy, parquet_dir=out):
        pass  # a writer that changed nothing still publishes what is there
    assert not (out / "refresh_log" / ".tmp-0123-abcd").exists()
    versions = [read_manifest(out)["tables"]["refresh_log"]["version"]]
    for run_id in ("r1", "r2"):
        with open_warehouse(copy, parquet_dir=out) as conn:
            conn.execute("INSERT INTO refresh_log SELECT * REPLACE (? AS run_id) FROM refresh_log LIMIT 1", [run_id])
        manifest = read_manifest(out)
        versions.append(manifest["tables"]["refresh_log"]["version"])
        assert {t: e["version"] for t, e in manifest["tables"].items() if t != "refresh_log"} == \
            {t: e["version"] for t, e in read_manifest(parquet)["tables"].items() if t != "refresh_log"}
    on_disk = sorted(p.name for p in (out / "refresh_log").iterdir())
    assert len(set(versions)) == 3 and on_disk == sorted(versions[1:])  # current and previous; the first is gone
    with pytest.raises(RuntimeError, match="boom"), open_warehouse(copy, parquet_dir=out) as conn:
        conn.execute("INSERT INTO refresh_log SELECT * REPLACE ('r3' AS run_id) FROM refresh_log LIMIT 1")
        raise RuntimeError("boom")  # a failed writer publishes nothing
    assert read_manifest(out)["tables"]["refresh_log"]["version"] == versions[-1]


def test_the_canvas_query_and_gwm_sql_read_the_same_through_parquet(published, world, tmp_path):
    home, warehouse, parquet, _ = published
    node = load_curriculum(home / "curriculum.yaml")["rates"]
    with open_warehouse(warehouse, read_only=True) as conn:
        direct = build_node_canvas(conn, node, world, tmp_path / "from_file")
    with open_warehouse(warehouse, read_only=True, parquet_dir=parquet) as conn:
        viewed = build_node_canvas(conn, node, world, tmp_path / "from_parquet")
    a, b = direct.canvas, viewed.canvas
    assert a.data_version == b.data_version and direct.n_observations == viewed.n_observations == 36
    assert np.array_equal(a.values, b.values, equal_nan=True) and np.array_equal(a.presence, b.presence)
    assert np.array_equal(a.available_us, b.available_us) and a.presence.sum() > 0
    query = ("select source, count(*) as n, min(ts) as first, max(ts) as last, round(sum(value), 2) as total "
             "from observations group by all order by all")  # the README's
    from_file = run([GWM, "sql", query, "--warehouse", str(warehouse)])
    from_parquet = run([GWM, "sql", query, "--parquet", str(parquet)], GWM_WAREHOUSE=str(home / "absent.duckdb"))
    assert from_file.returncode == from_parquet.returncode == 0, from_parquet.stderr
    assert from_parquet.stdout == from_file.stdout and "(1 row)" in from_file.stdout
    coverage = run([GWM, "coverage", "financial.yield_curves"], GWM_WAREHOUSE_PARQUET=str(parquet))
    assert coverage.returncode == 0, coverage.stderr
    assert coverage.stdout == run([GWM, "coverage", "financial.yield_curves", "--warehouse", str(warehouse)]).stdout


def test_a_missing_or_partial_export_fails_naming_the_directory_and_table(published, tmp_path):
    _, _, parquet, _ = published
    empty = tmp_path / "nothing"
    result = run([GWM, "sql", "select 1", "--parquet", str(empty)])
    assert result.returncode == 2 and f"no Parquet warehouse at {empty}" in result.stderr
    assert "gwm warehouse export" in result.stderr
    partial = tmp_path / "partial"
    shutil.copytree(parquet, partial)
    entry = read_manifest(partial)["tables"]["observations"]
    shutil.rmtree(partial / entry["path"] / "source=tabular")
    with pytest.raises(ParquetWarehouseIncomplete, match=rf"{partial}.*table 'observations' has no Parquet files"):
        with open_warehouse(partial, read_only=True, parquet_dir=partial):
            pass
    damaged = tmp_path / "damaged"
    shutil.copytree(parquet, damaged)
    fields = damaged / read_manifest(damaged)["tables"]["fields"]["path"] / "data_0.parquet"
    fields.write_bytes(fields.read_bytes()[: len(fields.read_bytes()) // 2])
    result = run([GWM, "sql", "select count(*) from fields", "--parquet", str(damaged)])
    assert result.returncode == 2 and f"the Parquet warehouse at {damaged} is damaged: table 'fields'" in result.stderr
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    result = run([GWM, "warehouse", "export", str(foreign), "--warehouse", str(published[1])])
    assert result.returncode == 2 and "is not empty and holds no gwm warehouse export" in result.stderr
