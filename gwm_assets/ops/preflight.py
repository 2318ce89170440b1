"""Check a cluster deployment before it runs: ``GWM_EXECUTOR=k8s python -m gwm_assets.ops.preflight deploy/k8s``.

Loads the Definitions as the cluster will (``GWM_EXECUTOR=k8s``) and validates, with Dagster's own
config schemas, ``run_config.yaml`` against the asset job (the k8s executor's settings) and
``dagster.yaml`` against the instance schema and ``K8sRunLauncher``'s; checks that the warehouse paths the
pods are given lie on a mounted volume; and builds each training step's Kubernetes Job as dagster-k8s
will (launcher settings, then the executor's, then the step's op tags), printing its resources.
Exit status 0 when everything holds, 1 with the errors otherwise.
"""

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import dagster as dg
import yaml

from gwm_assets.resources.deployment import GPU_RESOURCE, executor_name, training_gpus

RUN_CONFIG, INSTANCE = "run_config.yaml", "dagster.yaml"
SHARED_PATHS = ("GWM_WAREHOUSE", "GWM_WAREHOUSE_PARQUET")


def _errors(exc: dg.DagsterInvalidConfigError) -> list[str]:
    return [e.message for e in exc.errors] or [str(exc)]


def check_run_config(job: dg.JobDefinition, path: Path) -> tuple[list[str], dict]:
    """Errors of ``path`` as run config of ``job`` (empty when valid), and the executor's resolved config."""
    try:
        resolved = dg.validate_run_config(job, yaml.safe_load(path.read_text()) or {})
    except dg.DagsterInvalidConfigError as exc:
        return [f"{path}: {m}" for m in _errors(exc)], {}
    execution = resolved.get("execution") or {}  # resolved: keyed by the executor's name
    return [], dict(execution.get(job.executor_def.name) or execution.get("config") or {})


def check_instance(directory: Path) -> tuple[list[str], dict]:
    """Errors of ``directory/dagster.yaml`` as a Dagster instance with a K8sRunLauncher, and the launcher config."""
    from dagster._config import validate_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster_k8s import K8sRunLauncher

    path = directory / INSTANCE
    try:
        config, _ = dagster_instance_config(str(directory), INSTANCE)
    except dg.DagsterInvalidConfigError as exc:
        return [f"{path}: {m}" for m in _errors(exc)], {}
    launcher = config.get("run_launcher") or {}
    if launcher.get("class") != "K8sRunLauncher":
        return [f"{path}: run_launcher is {launcher.get('class')!r}; the k8s executor needs K8sRunLauncher"], {}
    result = validate_config(K8sRunLauncher.config_type(), launcher.get("config") or {})
    if not result.success:
        return [f"{path}: run_launcher.config: {e.message}" for e in result.errors], {}
    return [], dict(result.value)


CONTEXT_FIELDS = ("image_pull_policy", "image_pull_secrets", "service_account_name", "env_config_maps", "env_secrets",
                  "env_vars", "volume_mounts", "volumes", "labels", "resources", "scheduler_name", "security_context")


def step_job(launcher: dict, executor: dict, op_tags: Mapping[str, str]):
    """The Kubernetes Job the k8s executor would create for a step with ``op_tags``, built as dagster-k8s builds
    it: the run launcher's settings, then the executor's (``step_k8s_config``), then the step's tags. Raises on
    Kubernetes fields that do not exist (a misspelled key)."""
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        UserDefinedDagsterK8sConfig,
        construct_dagster_k8s_job,
        get_user_defined_k8s_config,
    )

    def context(config: dict, raw_key: str) -> K8sContainerContext:
        return K8sContainerContext(**{f: config.get(f) for f in CONTEXT_FIELDS}, namespace=config.get("job_namespace"),
                                   run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(config.get(raw_key) or {}))

    merged = context(launcher, "run_k8s_config").merge(context(executor, "step_k8s_config")).merge(
        K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(dict(op_tags))))
    image = executor.get("job_image") or launcher.get("job_image") or "gwm:preflight"
    job_config = DagsterK8sJobConfig(job_image=image, dagster_home=launcher.get("dagster_home"),
                                     instance_config_map=launcher.get("instance_config_map"),
                                     postgres_password_secret=launcher.get("postgres_password_secret"))
    return construct_dagster_k8s_job(job_config, args=["dagster", "api", "execute_step"], job_name="gwm-preflight",
                                     pod_name="gwm-preflight", component="step_worker",
                                     user_defined_k8s_config=merged.run_k8s_config)


def check_shared_paths(launcher: dict, where: str) -> list[str]:
    """The warehouse paths the pods get must lie on a volume every pod mounts."""
    env = dict(v.split("=", 1) for v in launcher.get("env_vars", []) if "=" in v)
    mounts = [str(m.get("mount_path") or m.get("mountPath")) for m in launcher.get("volume_mounts", [])]
    errors = [] if env.get("GWM_EXECUTOR") == "k8s" else [f"{where}: env_vars must set GWM_EXECUTOR=k8s (the run "
                                                          "pod loads the Definitions and must get the k8s executor)"]
    for name in SHARED_PATHS:
        value = env.get(name)
        if value is None:
            errors.append(f"{where}: env_vars must set {name} (a path on the shared volume)")
        elif not any(value == m or value.startswith(m.rstrip("/") + "/") for m in mounts):
            errors.append(f"{where}: {name}={value} is not under a mounted volume ({', '.join(mounts) or 'none'})")
    return errors


def training_steps(defs: dg.Definitions) -> dict[str, Mapping[str, str]]:
    """Op tags of each training asset's step, by asset key."""
    out = {}
    for asset in defs.resolve_asset_graph().assets_defs:
        keys = [k for k in asset.keys if asset.group_names_by_key.get(k) == "training"]
        if asset.is_executable and keys:
            out.update({key.to_user_string(): asset.op.tags for key in keys})
    return dict(sorted(out.items()))


def container_resources(job) -> dict:
    resources = job.spec.template.spec.containers[0].resources
    return {"requests": dict(resources.requests or {}), "limits": dict(resources.limits or {})} if resources else {}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gwm_assets.ops.preflight", description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", default="deploy/k8s", help="holds run_config.yaml and dagster.yaml")
    args = parser.parse_args(argv)
    directory = Path(args.directory)
    if executor_name() != "k8s":
        print("preflight: GWM_EXECUTOR is not k8s, so the Definitions use the multiprocess executor. Fix: "
              "GWM_EXECUTOR=k8s python -m gwm_assets.ops.preflight", file=sys.stderr)
        return 1
    from gwm_assets.definitions import defs

    job = defs.resolve_implicit_global_asset_job_def()
    errors, executor = check_run_config(job, directory / RUN_CONFIG)
    instance_errors, launcher = check_instance(directory)
    errors += instance_errors + (check_shared_paths(launcher, str(directory / INSTANCE)) if launcher else [])
    steps, pods = training_steps(defs), {}
    if not errors:
        for key, tags in steps.items():
            try:
                pods[key] = container_resources(step_job(launcher, executor, tags))
            except Exception as exc:  # dagster-k8s raises plain exceptions for fields Kubernetes does not know
                errors.append(f"the step pod of {key} cannot be built from {directory}: {exc}")
                break
    for error in errors:
        print(f"preflight: {error}", file=sys.stderr)
    if errors:
        return 1
    print(f"executor: {job.executor_def.name} for job {job.name}")
    print(f"{directory / RUN_CONFIG}: valid run config")
    print(f"{directory / INSTANCE}: valid instance (K8sRunLauncher, shared volume holds {', '.join(SHARED_PATHS)})")
    for key, resources in pods.items():
        print(f"{key} step pod resources: {json.dumps(resources, sort_keys=True)}")
    if training_gpus() and not any(GPU_RESOURCE in r.get("limits", {}) for r in pods.values()):
        print(f"note: GWM_K8S_GPUS={training_gpus()} but no training step asks for a GPU: pass "
              "op_tags=training_step_tags() to the training assets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
