"""Where the Definitions run: the executor (``GWM_EXECUTOR``) and what a step asks of a cluster.

- ``multiprocess`` (default): Dagster's multiprocess executor, every step a process on the machine that runs
  the run, set up for this code location (:data:`LOCAL_EXECUTOR`) whoever launches the run (``make run``, the UI's
  launchpad, a schedule): steps start from a forkserver that has already imported the code location, and the
  run's warehouse writers start one at a time. Only ``max_concurrent`` is left to the run config.
- ``in_process``: every step in the run's own process, one after another. On two cores it is the faster one
  (``make bench`` curriculum: 246 s against the multiprocess executor's 304 s for every node retrained), and
  it is what the tutorial test runs its commands with; a crashing step takes the run down with it.
- ``k8s``: dagster-k8s's ``k8s_job_executor``, every step a Kubernetes Job (``pip install -e '.[cluster]'``);
  ``deploy/k8s/`` holds the instance settings and run config. dagster_k8s is imported only then.

Training steps ask for GPUs under ``k8s`` through ``training_step_tags()`` (op tags that the k8s executor
turns into the step pod's container resources); ``GWM_K8S_GPUS`` sets how many (default 1, 0 = none).
"""

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg

from gwm_assets.resources.warehouse import WRITER_TAG

EXECUTORS = {
    "multiprocess": "Dagster's multiprocess executor on this machine (the default)",
    "in_process": "every step in the run's own process, one after another",
    "k8s": "one Kubernetes Job per step (dagster-k8s; pip install -e '.[cluster]')",
}
GPU_RESOURCE = "nvidia.com/gpu"
K8S_CONFIG_TAG = "dagster-k8s/config"


class DeploymentError(ValueError):
    """A deployment setting (GWM_EXECUTOR, GWM_K8S_GPUS) is invalid or its package is missing."""


def executor_name(env: Mapping[str, str] | None = None) -> str:
    """The executor ``GWM_EXECUTOR`` names (``multiprocess`` when unset or empty)."""
    value = (os.environ if env is None else env).get("GWM_EXECUTOR", "").strip().lower() or "multiprocess"
    if value not in EXECUTORS:
        known = "; ".join(f"{name}: {what}" for name, what in EXECUTORS.items())
        raise DeploymentError(f"GWM_EXECUTOR={value!r} is not an executor gwm knows. Fix: set it to one of: {known}")
    return value


def _local_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The multiprocess executor's config for a run on this machine (``config``: the run's ``max_concurrent``, if any).

    - ``forkserver`` preloading the code location: each of the ~40 steps of the whole graph skips its own 3 s import
      of gwm_assets (torch, dagster, duckdb).
    - ``tag_concurrency_limits``: every warehouse writer carries ``WRITER_TAG`` and also sits in the ``duckdb_write``
      pool. Held to one at a time by the run's own executor, a writer starts when the previous one has finished;
      left to the pool alone, the writers of one run all ask it, and a step the pool turns away asks again only
      after a back-off that grows to 15 s. Set here rather than in a run config file, so that runs launched from
      the UI or by a schedule get it too.
    """
    ((key, value),) = WRITER_TAG.items()
    out: dict[str, Any] = {"start_method": {"forkserver": {"preload_modules": ["gwm_assets.definitions"]}},
                           "tag_concurrency_limits": [{"key": key, "value": value, "limit": 1}]}
    if config.get("max_concurrent") is not None:
        out["max_concurrent"] = config["max_concurrent"]
    return out


#: Dagster's multiprocess executor as every local run of gwm uses it (:func:`_local_config`).
LOCAL_EXECUTOR = dg.multiprocess_executor.configured(
    _local_config, name="gwm_multiprocess",
    config_schema={"max_concurrent": dg.Field(int, is_required=False,
                                              description="steps that may run at once (default: the CPU count)")})


def executor_from_env(env: Mapping[str, str] | None = None) -> dg.ExecutorDefinition:
    """The ``executor=`` for the Definitions (see the module doc)."""
    name = executor_name(env)
    if name == "multiprocess":
        return LOCAL_EXECUTOR
    if name == "in_process":
        return dg.in_process_executor
    try:
        from dagster_k8s import k8s_job_executor
    except ImportError as exc:
        raise DeploymentError(f"GWM_EXECUTOR=k8s needs the dagster-k8s package ({exc}). Fix: "
                              "pip install -e '.[cluster]'") from exc
    return k8s_job_executor


def training_gpus(env: Mapping[str, str] | None = None) -> int:
    text = (os.environ if env is None else env).get("GWM_K8S_GPUS", "").strip() or "1"
    if not text.isdigit():
        raise DeploymentError(f"GWM_K8S_GPUS={text!r} is not a whole number of GPUs. Fix: set it to 0, 1, 2, ...")
    return int(text)


def training_step_tags(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Op tags for a training step: under ``k8s``, its pod asks for ``GWM_K8S_GPUS`` GPUs; elsewhere none."""
    if executor_name(env) != "k8s" or (gpus := training_gpus(env)) == 0:
        return {}
    return {K8S_CONFIG_TAG: {
        "container_config": {"resources": {"limits": {GPU_RESOURCE: str(gpus)}}},
        # GPU node pools are usually tainted so that only pods that ask for a GPU land there
        "pod_spec_config": {"tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]},
    }}
