"""The curriculum as assets: ``train/trunk``, then one ``train/<node>`` per curriculum node (group ``training``).

``train/trunk`` depends on the tier-0 canvases; a tier-0 node depends on its canvas and the trunk; a
join depends on its canvas and its parents' ``train/<parent>``. Training writes checkpoint files
under ``warehouse/checkpoints/<node>/`` (not the warehouse), so the multiprocess executor runs the
tier-0 nodes side by side; only the ``checkpoints`` row at the end takes the warehouse lock.

Each asset fingerprints its inputs (canvas data version, parents' and trunk's weight hashes, the
resolved hyperparameters, the code version). When the checkpoint on disk has the same fingerprint
it is kept without training, and the asset's data version (the weights' hash) is unchanged, so a
refresh that changes one node's data retrains that node and its descendants only.

With ``TrainingResource.ddp_processes`` > 0 a node trains on that many GPUs: the asset runs
``torchrun ... -m gwm_assets.training.train_node_ddp`` (:mod:`gwm_assets.training.node_run`), which writes the same
checkpoint the in-process path writes, and then reads it.
"""

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import torch

from gwm_assets.canvases.assets import CURRICULUM, canvas_key
from gwm_assets.resources.deployment import training_step_tags
from gwm_assets.resources.paths import canvases_dir
from gwm_assets.resources.training import TrainingResource
from gwm_assets.resources.warehouse import WarehouseResource
from gwm_assets.resources.world import WorldSchemaResource
from gwm_assets.training.checkpoint_table import record_checkpoint
from gwm_assets.training.core_share import CoreShare
from gwm_assets.training.node_run import (
    TRUNK,
    DDPLaunchError,
    NodeJob,
    load_canvas,
    prepare_node,
    run_torchrun,
    torchrun_command,
    train_job,
)
from gwm_assets.training.plots import forecast_vs_actual_png, loss_curve_png, markdown_image
from gwm_assets.warehouse.clock import utcnow
from gwm_model.curriculum import Curriculum, CurriculumError, CurriculumNode
from gwm_model.curriculum.fingerprint import stored_manifest, trunk_fingerprint
from gwm_model.curriculum.trunk import TrunkInput, save_trunk, train_trunk
from gwm_model.nn.field_text import FieldEmbeddings
from gwm_model.training.loggers import CallbackLogger

REBALANCE_EVERY = 5  # steps between two looks at how many training processes share the cores


def train_key(node: str) -> dg.AssetKey:
    return dg.AssetKey(["train", node])


def _progress(context: dg.AssetExecutionContext, label: str, rebalance: Callable[[], None]) -> CallbackLogger:
    state = {"total": 0, "next": 0}

    def start(run: dict, total: int | None) -> None:
        state["total"] = int(total or 0)
        context.log.info(f"{label}: training {state['total']} steps on {run.get('train_windows')} windows "
                         f"({run.get('parameters')} trainable parameters)")

    def step(n: int, metrics: dict) -> None:
        if n % REBALANCE_EVERY == 0:
            rebalance()
        if state["total"] and n >= state["next"]:
            context.log.info(f"{label}: step {n}/{state['total']} loss {metrics['loss']:.4f} lr {metrics['lr']:.2e}")
            state["next"] = n + max(1, state["total"] // 10)

    def epoch(n: int, metrics: dict) -> None:
        if "val_loss" in metrics:
            context.log.debug(f"{label}: epoch {n} train {metrics['train_loss']:.4f} val {metrics['val_loss']:.4f}")

    return CallbackLogger(on_step=step, on_epoch=epoch, on_start=start)


@contextmanager
def _cores(context: dg.AssetExecutionContext, training: TrainingResource) -> Iterator[Callable[[], None]]:
    """Torch threads while one step trains: ``torch_threads`` when set, else (0) this process's share of the
    machine's cores (:mod:`gwm_assets.training.core_share`), re-balanced whenever the yielded function is called."""
    if training.torch_threads > 0:
        torch.set_num_threads(training.torch_threads)
        yield lambda: None
        return
    with CoreShare() as share:
        def rebalance() -> None:
            wanted, now = share.threads(), torch.get_num_threads()
            if wanted != now:
                context.log.debug(f"torch threads {now} -> {wanted} ({share.running()} training process(es) "
                                  f"on {share.cores} cores)")
                torch.set_num_threads(wanted)

        rebalance()
        yield rebalance


def _trunk_asset(curriculum: Curriculum) -> dg.AssetsDefinition:
    roots = [n for n in curriculum.order() if not curriculum[n].parents]  # the roots fork from the trunk

    @dg.asset(key=train_key(TRUNK), group_name="training", deps=[canvas_key(n) for n in roots],
              kinds={"pytorch", "safetensors"}, tags={"tier": "trunk"}, op_tags=training_step_tags(),
              description="The shared origin of every curriculum node: one model trained briefly on all tier-0 "
                          "canvases in turn (weights average only between models that share an origin).")
    def trunk(context: dg.AssetExecutionContext, world: WorldSchemaResource, warehouse: WarehouseResource,
              training: TrainingResource) -> dg.MaterializeResult:
        profile = training.chosen_profile(curriculum.default_profile)
        hyper = curriculum.trunk_hyperparameters(profile)
        schema = world.load()
        root, out = canvases_dir(warehouse.path), Path(training.checkpoints_path) / TRUNK
        inputs = [TrunkInput(n, load_canvas(root, n), curriculum[n].projection(schema)) for n in roots]
        inputs_fp = trunk_fingerprint([i.name for i in inputs], hyper.to_dict(),
                                      inputs[0].canvas.schema_hash)
        stored = stored_manifest(out)
        kept = bool(stored and stored.get("inputs_fingerprint") == inputs_fp and not training.force)
        if not kept:
            with _cores(context, training) as rebalance:
                def progress(step: int, total: int, loss: float) -> None:
                    if step % REBALANCE_EVERY == 0:
                        rebalance()
                    if step == 1 or step % max(1, total // 10) == 0 or step == total:
                        context.log.info(f"trunk: step {step}/{total} loss {loss:.4f}")

                result = train_trunk(inputs, hyper.model, hyper.train,
                                     FieldEmbeddings(inputs[0].canvas.schema_hash), progress)
            stored = save_trunk(out, result, hyper, inputs, inputs_fp)
            context.log.info(f"trunk: trained {result.steps} steps on {result.trained_on} in {result.seconds:.1f} s; "
                             f"validation loss before {result.val_before} after {result.val_after}")
        else:
            context.log.info(f"trunk: inputs unchanged (fingerprint {inputs_fp}); kept {out}")
        info = stored["trunk"]
        png = loss_curve_png(f"trunk ({profile}): {', '.join(info['trained_on']) or 'shared initialisation only'}",
                             info["losses"])
        return dg.MaterializeResult(
            metadata={"profile": profile, "steps": info["steps"], "trained_on": ", ".join(info["trained_on"]),
                      "skipped": json.dumps(info["skipped"]), "val_loss_before": json.dumps(info["val_before"]),
                      "val_loss_after": json.dumps(info["val_after"]), "kept": kept,
                      "weights_sha256": stored["weights_sha256"], "path": dg.MetadataValue.path(str(out)),
                      "loss_curve": dg.MetadataValue.md(markdown_image(png, "trunk loss"))},
            data_version=dg.DataVersion(stored["weights_sha256"][:16]))

    return trunk


def _evaluation_table(evaluation: dict | None) -> str:
    """Per field group, at the pooled horizon: cells, and each forecaster's skill against the naive forecast."""
    rows = [r for r in (evaluation or {}).get("forecasts") or [] if r["horizon"] == "all" and r["n_cells"]]
    if not rows:
        reason = ((evaluation or {}).get("summary") or {}).get("reason")
        return f"not evaluated ({reason or 'no test windows with data'})"
    forecasters = list(dict.fromkeys(r["model"] for r in rows if r["model"] != "naive"))
    groups = list(dict.fromkeys(r["group"] for r in rows))
    by = {(r["model"], r["group"]): r for r in rows}

    def cell(model: str, group: str) -> str:
        r = by.get((model, group))
        if r is None or r["skill"] is None:
            return ""
        p = r.get("dm_pvalue")
        return f"{r['skill']:+.3f}" + (f" (p {p:.3f})" if model == "model" and p is not None else "")

    lines = ["| field group | cells | " + " | ".join(forecasters) + " |", "|---" * (len(forecasters) + 2) + "|"]
    lines += [f"| {g} | {by[('model', g)]['n_cells'] if ('model', g) in by else ''} | "
              + " | ".join(cell(m, g) for m in forecasters) + " |" for g in groups]
    excluded = (evaluation or {}).get("excluded") or {}
    note = "skill = 1 - MSE / MSE(naive) on the same cells; naive = persistence or climatology per field, " \
           "chosen on the validation windows"
    if excluded:
        note += "; not scored: " + "; ".join(f"{p} ({why})" for p, why in excluded.items())
    return "\n".join(lines) + "\n\n" + note


def _node_asset(curriculum: Curriculum, node: CurriculumNode) -> dg.AssetsDefinition:
    upstream = [train_key(p) for p in node.parents] or [train_key(TRUNK)]

    @dg.asset(key=train_key(node.name), group_name="training", deps=[canvas_key(node.name), *upstream],
              kinds={"pytorch", "safetensors"}, tags={"tier": str(node.tier)}, op_tags=training_step_tags(),
              description=f"Checkpoint of curriculum node `{node.name}` (tier {node.tier}): {node.description}. "
                          + (f"Merges {', '.join(node.parents)}." if len(node.parents) > 1 else
                             f"Starts from {node.parents[0]}." if node.parents else "Forks from the trunk."))
    def train(context: dg.AssetExecutionContext, world: WorldSchemaResource, warehouse: WarehouseResource,
              training: TrainingResource) -> dg.MaterializeResult:
        profile = training.chosen_profile(curriculum.default_profile)
        job = prepare_node(curriculum, node.name, world.load(), canvases_dir(warehouse.path),
                           Path(training.checkpoints_path), profile)
        out, stored = job.out, job.stored()
        kept = job.current() and not training.force
        label = f"train/{node.name} ({profile})"
        if kept:
            context.log.info(f"{node.name}: inputs unchanged (fingerprint {job.fingerprint}); kept {out}")
        elif training.ddp_processes > 0:
            stored = _train_ddp(context, curriculum, job, training, warehouse, world, label)
        else:
            with _cores(context, training) as rebalance:
                result = train_job(job, loggers=[_progress(context, label, rebalance)], log=context.log.info)
            context.log.info(f"{label}: {result.merge_report.summary()}")
            context.log.info(f"{label}: {result.steps} steps in {result.seconds:.1f} s; metrics {result.metrics}"
                             + (f"; {result.note}" if result.note else ""))
            stored = json.loads(result.manifest_path.read_text())
        with warehouse.connect() as conn:
            record_checkpoint(conn, stored, out, utcnow())
        return dg.MaterializeResult(metadata=_node_metadata(node, stored, out, kept),
                                    data_version=dg.DataVersion(stored["weights_sha256"][:16]))

    return train


def _train_ddp(context: dg.AssetExecutionContext, curriculum: Curriculum, job: NodeJob, training: TrainingResource,
               warehouse: WarehouseResource, world: WorldSchemaResource, label: str) -> dict:
    """Train the node under ``torchrun`` (``training.ddp_processes`` processes) and return the manifest it wrote."""
    if not Path(curriculum.path).is_file():
        raise CurriculumError(f"{label}: DDP training runs the curriculum from its file, but this curriculum was not "
                              f"read from one ({curriculum.path}). Fix: load it from a file or set ddp_processes: 0")
    n = training.ddp_processes
    command = torchrun_command(job.node.name, n, curriculum=Path(curriculum.path), profile=job.profile,
                               warehouse=warehouse.path, checkpoints=training.checkpoints_path,
                               schema=world.schema_path, threads=training.torch_threads)
    context.log.info(f"{label}: training with torch DDP on {n} processes: {' '.join(command)}")
    run_torchrun(command, job.node.name, n, log=context.log.info)
    stored = job.stored()
    if not stored or stored.get("inputs_fingerprint") != job.fingerprint:
        raise DDPLaunchError(f"{label}: torchrun exited cleanly but {job.out} holds no checkpoint with fingerprint "
                             f"{job.fingerprint}. Fix: run the command above by hand and read its output")
    context.log.info(f"{label}: {stored.get('steps')} steps on {n} processes in {stored.get('seconds', 0):.1f} s; "
                     f"metrics {stored.get('metrics')}")
    return stored


def _node_metadata(node: CurriculumNode, manifest: dict, out: Path, kept: bool) -> dict:
    metrics = manifest.get("metrics", {})
    merge = manifest.get("merge", {})
    report = merge.get("report", {})
    quality = merge.get("quality") or {}
    after = merge.get("child_vs_parents") or {}
    history = manifest.get("history", {})
    measure = (manifest.get("hyperparameters", {}).get("train") or {}).get("select_on", "masked")
    png = loss_curve_png(f"{node.name} (tier {node.tier}, {manifest.get('profile')})", history.get("steps", []),
                         history.get("epochs", []), history.get("validations", []), history.get("best_step"), measure)
    lineage = manifest.get("lineage", {})

    def number(value: object) -> float | None:
        return None if value is None else float(value)

    return {
        "profile": manifest.get("profile"), "tier": node.tier, "parents": ", ".join(node.parents) or "trunk",
        "parent_checkpoints": json.dumps({p["name"]: p["weights_sha256"][:16] for p in lineage.get("parents", [])}),
        "steps": int(manifest.get("steps") or 0), "kept": kept,
        # the optimiser step whose weights model selection kept (0: the starting weights; -1: nothing validated)
        "selected_step": int(history["best_step"] if history.get("best_step") is not None else -1),
        "val_loss": number(metrics.get("val_loss")), "val_skill": number(metrics.get("val_skill")),
        "test_skill": number(metrics.get("test_skill")), "dm_pvalue": number(metrics.get("dm_pvalue")),
        "median_group_skill": number(metrics.get("median_group_skill")),
        "groups_scored": int(metrics.get("groups_scored") or 0),
        "groups_worse_than_naive": int(metrics.get("groups_worse_than_naive") or 0),
        "forecastable_groups": ", ".join(metrics.get("forecastable_groups") or []) or "none",
        "forecastable_group_skill": number(metrics.get("forecastable_group_skill")),
        "forecastable_classical_skill": number(metrics.get("forecastable_classical_skill")),
        "score_note": metrics.get("score_note") or "",
        "evaluation": dg.MetadataValue.md(_evaluation_table(manifest.get("evaluation"))),
        "merge_method": report.get("method"),
        "merge_keys": f"{len(report.get('averaged', []))} averaged, {len(report.get('copied', []))} copied, "
                      f"{len(report.get('fresh', []))} fresh; zero-initialised blocks "
                      f"{report.get('zero_initialised_blocks') or 'none'}",
        "merge_skipped_untrained": ", ".join(report.get("skipped", [])) or "none",
        "worst_surviving_share": number(quality.get("worst_surviving_share")),
        "worst_forecast_surviving_share": number(quality.get("worst_forecast_surviving_share")),
        "worst_ensemble_gap": number(quality.get("worst_ensemble_gap")),
        "max_loss_barrier": number(quality.get("max_barrier")),
        "worst_child_minus_parent": number(after.get("worst_child_minus_parent")),
        "trainable_fraction": float(manifest.get("trainable_fraction") or 0.0),
        "parameters": int(manifest.get("parameters", {}).get("total", 0)),
        "model_fields": len(manifest.get("plan", {}).get("fields", [])),
        "weights_sha256": manifest.get("weights_sha256"), "note": manifest.get("note") or "",
        "path": dg.MetadataValue.path(str(out)),
        "loss_curve": dg.MetadataValue.md(markdown_image(png, f"{node.name} loss")),
        "test_forecasts": dg.MetadataValue.md(markdown_image(forecast_vs_actual_png(
            f"{node.name}: one step ahead on the test period", (manifest.get("evaluation") or {}).get("trace") or {}),
            f"{node.name} test forecasts")),
    }


def training_assets(curriculum: Curriculum) -> list[dg.AssetsDefinition]:
    return [_trunk_asset(curriculum), *(_node_asset(curriculum, curriculum[n]) for n in curriculum.order())]


TRAINING_ASSETS = training_assets(CURRICULUM)
