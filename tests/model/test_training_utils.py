"""Training loggers (console, JSONL, TensorBoard, wandb, callbacks) and window orders (curricula)."""

from __future__ import annotations

import importlib.machinery
import io
import json
import math
import sys
import types

import numpy as np
import pytest

from gwm_model.training.loggers import (
    CallbackLogger,
    ConsoleLogger,
    JsonlLogger,
    MultiLogger,
    TensorBoardLogger,
    TrainLogger,
    WandbLogger,
    make_loggers,
    read_jsonl,
)
from gwm_model.training.ordering import (
    EasyToHardOrder,
    RandomOrder,
    SelfPacedOrder,
    WindowOrder,
    difficulty_from_variability,
    make_order,
)


def _strict_json(line: str) -> dict:
    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name} in {line!r}")

    return json.loads(line, parse_constant=refuse)


# --------------------------------------------------------------------------------------------- loggers


def test_jsonl_lines_parse_hold_metrics_nan_as_null_and_append(tmp_path):
    path = tmp_path / "deep" / "run" / "metrics.jsonl"
    logger = JsonlLogger(path)
    assert not path.exists()  # nothing written before the first event
    logger.start({"lr": 1e-3, "out": tmp_path, "sizes": np.array([1, 2])}, 2)
    logger.log_step(1, {"loss": 0.5, "lr": 1e-3})
    logger.log_step(2, {"loss": float("nan"), "grad_norm": np.float32("inf"), "windows_per_s": np.float64(12.5)})
    logger.log_epoch(0, {"train_loss": 0.5, "val_loss": 0.25})
    logger.finish({"best_val_loss": 0.25})

    lines = path.read_text().splitlines()
    records = [_strict_json(line) for line in lines]  # every line is standard JSON: no NaN/Infinity tokens
    assert [r["event"] for r in records] == ["start", "step", "step", "epoch", "finish"]
    assert all(isinstance(r["time"], float) for r in records)
    assert records[0]["total_steps"] == 2
    assert records[0]["run"] == {"lr": 1e-3, "out": str(tmp_path), "sizes": [1, 2]}
    assert records[1] == {**records[1], "step": 1, "loss": 0.5, "lr": 1e-3}
    assert records[2]["loss"] is None and records[2]["grad_norm"] is None and records[2]["windows_per_s"] == 12.5
    assert records[3]["epoch"] == 0 and records[3]["val_loss"] == 0.25
    assert records[4]["summary"] == {"best_val_loss": 0.25}

    second = JsonlLogger(path)  # a resumed run appends to the same file
    second.start({"resumed": True}, 4)
    second.log_step(3, {"loss": 0.4})
    assert read_jsonl(path)[:5] == records
    assert [r["step"] for r in read_jsonl(path, event="step")] == [1, 2, 3]
    assert [r["run"] for r in read_jsonl(path, event="start")] == [records[0]["run"], {"resumed": True}]

    with pytest.raises(ValueError, match="clash"):
        second.log_step(4, {"step": 1.0})


def test_read_jsonl_drops_a_cut_off_last_line_but_not_a_corrupt_middle(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"event": "step", "step": 1}\n{"event": "st')
    assert read_jsonl(path) == [{"event": "step", "step": 1}]
    path.write_text('{"event": "step"}\nnot json\n{"event": "step"}\n')
    with pytest.raises(ValueError, match=r"m\.jsonl:2"):
        read_jsonl(path)


def test_tensorboard_event_file_holds_scalars_and_hparams(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logdir = tmp_path / "tb"
    logger = TensorBoardLogger(logdir)
    logger.start({"lr": 3e-4, "model": "tiny"}, 3)
    for step, loss in enumerate([1.0, 0.5, 0.25], start=1):
        logger.log_step(step, {"loss": loss, "lr": 3e-4, "bad": float("nan")})
    logger.log_epoch(0, {"train_loss": 0.6, "val_loss": 0.4})
    logger.finish({"best_val_loss": 0.4})

    assert list(logdir.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(logdir))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "val/loss", "train/loss_epoch", "epoch/epoch"} <= scalars
    assert "train/bad" not in scalars  # non-finite values are skipped, not plotted
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [1, 2, 3]
    assert [e.value for e in loss] == pytest.approx([1.0, 0.5, 0.25])
    val = events.Scalars("val/loss")
    assert [(e.step, e.value) for e in val] == [(3, pytest.approx(0.4))]  # at the latest step
    assert any(tag.startswith("hparams") for tag in events.Tags()["tensors"])


def _run_console(tty: bool) -> str:
    now = [0.0]
    stream = io.StringIO()
    logger = ConsoleLogger(stream=stream, tty=tty, clock=lambda: now[0])
    logger.start({"name": "demo"}, 100)
    for step in range(1, 101):
        now[0] = float(step)  # one second per step
        logger.log_step(step, {"loss": 2.0, "lr": 3e-4, "windows_per_s": 64.0})
        if step == 50:
            logger.log_epoch(0, {"train_loss": 2.0, "val_loss": 1.5})
    logger.finish({"best_val_loss": 1.5})
    return stream.getvalue()


def test_console_logger_prints_plain_lines_with_counts_and_eta_when_not_a_tty():
    text = _run_console(tty=False)
    assert "\r" not in text
    lines = text.splitlines()
    steps = [line for line in lines if line.startswith("[")]
    assert len(steps) == 21  # the first step, then every 5 steps (20 lines per run)
    assert steps[0].startswith("[") and "1/100" in steps[0] and "ETA ?" in steps[0]
    middle = next(line for line in steps if " 50/100" in line)
    assert "ETA 0:00:50" in middle and "loss 2 " in middle and "lr 3.00e-04" in middle and "64 win/s" in middle
    assert "1 it/s" in middle
    assert "100/100" in steps[-1] and "elapsed" in steps[-1]
    assert any(line.startswith("epoch 0 | train_loss 2 | val_loss 1.5") for line in lines)
    assert lines[0] == "training demo: 100 steps" and lines[-1].startswith("done in 0:01:40 | best_val_loss 1.5")


def test_console_logger_redraws_in_place_on_a_tty():
    text = _run_console(tty=True)
    assert text.count("\r") >= 90  # one redraw per step (steps are 1 s apart, above the 0.1 s throttle)
    assert "\nepoch 0 | " in text  # the bar line is ended before the epoch line


def test_wandb_missing_raises_import_error_with_install_hint(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)  # makes `import wandb` fail
    with pytest.raises(ImportError, match="pip install wandb"):
        WandbLogger("gwm")
    with pytest.raises(ImportError, match="pip install wandb"):
        make_loggers(["wandb"], tmp_path)
    with pytest.warns(UserWarning, match="wandb"):
        assert make_loggers(["wandb?"], tmp_path) == []


def _fake_wandb(calls: list) -> types.ModuleType:
    class Run:
        summary: dict = {}

        def log(self, values, step):
            calls.append(("log", values, step))

        def finish(self):
            calls.append(("finish", dict(self.summary)))

    module = types.ModuleType("wandb")
    module.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
    module.init = lambda **kwargs: calls.append(("init", kwargs)) or Run()
    return module


def test_wandb_logger_forwards_to_wandb(monkeypatch, tmp_path):
    calls: list = []
    monkeypatch.setitem(sys.modules, "wandb", _fake_wandb(calls))
    logger = WandbLogger("gwm", mode="offline")
    logger.start({"lr": 1e-3}, 10)
    logger.log_step(1, {"loss": 0.5, "bad": float("nan")})
    logger.log_epoch(0, {"val_loss": 0.4})
    logger.finish({"best": 0.4})
    assert calls[0] == ("init", {"project": "gwm", "config": {"lr": 1e-3, "total_steps": 10}, "mode": "offline"})
    assert calls[1:] == [("log", {"train/loss": 0.5}, 1), ("log", {"val/loss": 0.4, "epoch/epoch": 0}, 1),
                         ("finish", {"best": 0.4})]
    kinds = [type(logger) for logger in make_loggers(None, tmp_path)]  # auto takes wandb when installed
    assert kinds == [ConsoleLogger, JsonlLogger, TensorBoardLogger, WandbLogger]


def test_make_loggers_builds_the_named_set(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)
    auto = make_loggers(None, tmp_path)
    assert [type(logger) for logger in auto] == [ConsoleLogger, JsonlLogger, TensorBoardLogger]
    assert all(isinstance(logger, TrainLogger) for logger in auto)
    assert auto[1].path == tmp_path / "metrics.jsonl" and auto[2].logdir == tmp_path / "tensorboard"
    assert [type(x) for x in make_loggers("jsonl, console,jsonl", tmp_path)] == [JsonlLogger, ConsoleLogger]
    assert [type(x) for x in make_loggers(["auto", "console"], tmp_path)] == [ConsoleLogger, JsonlLogger,
                                                                              TensorBoardLogger]
    assert make_loggers(["none"], tmp_path) == [] and make_loggers([], tmp_path) == []
    with pytest.raises(ValueError, match="console, jsonl, tensorboard, wandb"):
        make_loggers(["csv"], tmp_path)
    assert not list(tmp_path.iterdir())  # building loggers writes nothing


def test_callback_and_multi_logger_forward_every_event_and_propagate_errors():
    seen: list = []
    forward = CallbackLogger(on_step=lambda s, m: seen.append(("step", s, m)),
                             on_epoch=lambda e, m: seen.append(("epoch", e, m)),
                             on_start=lambda r, t: seen.append(("start", r, t)),
                             on_finish=lambda s: seen.append(("finish", s)))
    both = MultiLogger([forward, CallbackLogger(on_step=lambda s, m: seen.append(("again", s)))])
    both.start({"a": 1}, 5)
    both.log_step(1, {"loss": 1.0})
    both.log_epoch(0, {"val_loss": 2.0})
    both.finish({"ok": True})
    assert seen == [("start", {"a": 1}, 5), ("step", 1, {"loss": 1.0}), ("again", 1), ("epoch", 0, {"val_loss": 2.0}),
                    ("finish", {"ok": True})]

    def broken(step, metrics):
        raise RuntimeError("logger down")

    with pytest.raises(RuntimeError, match="logger down"):
        MultiLogger([CallbackLogger(on_step=broken), forward]).log_step(2, {})


# ---------------------------------------------------------------------------------------------- orders


def test_random_order_is_a_fresh_reproducible_permutation_each_epoch():
    order = RandomOrder(50)
    assert isinstance(order, WindowOrder)
    rng = np.random.default_rng(0)
    first, second = order.epoch_indices(0, rng), order.epoch_indices(1, rng)
    assert np.array_equal(np.sort(first), np.arange(50)) and np.array_equal(np.sort(second), np.arange(50))
    assert not np.array_equal(first, second)
    again = np.random.default_rng(0)
    assert np.array_equal(order.epoch_indices(0, again), first)


def test_easy_to_hard_starts_with_exactly_the_easiest_share_and_grows_to_all():
    rng = np.random.default_rng(1)
    difficulty = rng.permutation(100).astype(float)
    order = EasyToHardOrder(difficulty, start_fraction=0.3, ramp_epochs=5)
    epoch0 = order.epoch_indices(0, rng)
    assert sorted(epoch0.tolist()) == sorted(np.argsort(difficulty)[:30].tolist())
    assert not np.array_equal(epoch0, np.argsort(difficulty)[:30])  # shuffled, not sorted by difficulty
    sizes = [len(order.epoch_indices(e, rng)) for e in range(8)]
    assert sizes == [30, 44, 58, 72, 86, 100, 100, 100]
    for e in range(5):  # each pool contains the previous one
        assert set(order.pool(e)) <= set(order.pool(e + 1))
    assert sorted(order.epoch_indices(5, rng).tolist()) == list(range(100))

    ties = EasyToHardOrder(np.array([1.0, 0.0, 1.0, 1.0, 0.0, 2.0, 1.0, 1.0, 1.0, 1.0]), start_fraction=0.3)
    assert sorted(ties.pool(0).tolist()) == [0, 1, 4]  # 3 of 10 (not 4), equal scores ranked by index
    assert sorted(EasyToHardOrder(difficulty, ramp_epochs=0).pool(0).tolist()) == list(range(100))
    assert len(EasyToHardOrder(np.arange(10.0), start_fraction=0.1 * 3).pool(0)) == 3  # 0.30000000000000004 * 10
    with pytest.raises(ValueError, match="NaN"):
        EasyToHardOrder(np.array([0.0, np.nan]))


def test_difficulty_from_variability_scores_changes_between_observed_steps():
    targets = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 3.0], [0.0, 99.0, 2.0], [5.0, 7.0, 9.0]])[:, :, None]
    mask = np.array([[1, 1, 1], [1, 1, 1], [1, 0, 1], [0, 1, 0]], dtype=bool)[:, :, None]
    scores = difficulty_from_variability(targets, mask, fill=-1.0)
    assert scores.tolist() == pytest.approx([0.0, 2.5, 4.0, -1.0])  # gap skipped; no pair -> fill
    two_slots = np.concatenate([targets, 10 * targets], axis=2)
    both = difficulty_from_variability(two_slots, np.concatenate([mask, mask], axis=2))
    assert both[1] == pytest.approx((1 + 4 + 100 + 400) / 4)
    with pytest.raises(ValueError, match="same shape"):
        difficulty_from_variability(targets, mask[:, :2])


def test_self_paced_drops_the_hardest_windows_after_warmup_then_takes_them_back():
    order = SelfPacedOrder(10, start_quantile=0.5, growth=0.25, warmup_epochs=1)
    rng = np.random.default_rng(2)
    assert sorted(order.epoch_indices(0, rng).tolist()) == list(range(10))  # warm-up: everything
    visit = order.epoch_indices(0, rng)
    order.update(visit, visit.astype(float))  # window i has loss i
    assert sorted(order.epoch_indices(1, rng).tolist()) == [0, 1, 2, 3, 4]  # median of 0..9 is 4.5
    assert sorted(order.epoch_indices(2, rng).tolist()) == [0, 1, 2, 3, 4, 5, 6]  # 0.75-quantile 6.75
    assert sorted(order.epoch_indices(3, rng).tolist()) == list(range(10))

    partial = SelfPacedOrder(6, start_quantile=0.5, warmup_epochs=0, smoothing=0.5)
    partial.update(np.array([0, 1, 2, 3]), np.array([1.0, 2.0, 30.0, 40.0]))
    partial.update(np.array([3]), np.array([np.nan]))  # ignored
    assert sorted(partial.pool(0).tolist()) == [0, 1, 4, 5]  # unmeasured 4 and 5 are kept
    partial.update(np.array([0]), np.array([3.0]))
    assert partial.losses[0] == pytest.approx(2.0)  # moving average with weight 0.5
    restored = SelfPacedOrder(6)
    restored.load_state_dict(partial.state_dict())
    assert np.array_equal(restored.losses, partial.losses, equal_nan=True)
    with pytest.raises(ValueError, match="2 indices but 1 losses"):
        partial.update(np.array([0, 1]), np.array([1.0]))


def test_make_order_builds_by_name_and_names_the_choices():
    assert isinstance(make_order("random", 5), RandomOrder)
    assert isinstance(make_order("Self-Paced", 5, warmup_epochs=2), SelfPacedOrder)
    easy = make_order("easy_to_hard", 3, difficulty=np.array([2.0, 0.0, 1.0]), start_fraction=0.34)
    assert isinstance(easy, EasyToHardOrder) and easy.pool(0).tolist() == [1, 2]
    with pytest.raises(ValueError, match="random, easy_to_hard, self_paced"):
        make_order("hardest_first", 5)
    with pytest.raises(ValueError, match="needs a difficulty"):
        make_order("easy_to_hard", 5)
    with pytest.raises(ValueError, match="3 difficulty scores for 5 windows"):
        make_order("easy_to_hard", 5, difficulty=np.zeros(3))
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    assert math.isclose(make_order("self_paced", 4).quantile(3), 0.7)
    assert np.array_equal(easy.epoch_indices(1, rng_a), easy.epoch_indices(1, rng_b))


def test_console_loss_is_smoothed():
    stream = io.StringIO()
    logger = ConsoleLogger(stream=stream, every=1, tty=False)
    logger.start({}, 40)
    for step in range(1, 41):
        logger.log_step(step, {"loss": 0.0 if step % 2 else 4.0})  # alternates 0, 4, 0, 4, ...
    shown = [float(line.split("loss ")[1].split(" ")[0]) for line in stream.getvalue().splitlines()[1:]]
    assert shown[0] == 0.0 and shown[1] == pytest.approx(4 * 0.1 / 0.19, abs=1e-3)  # bias-corrected average
    assert 1.7 < shown[-1] < 2.3
