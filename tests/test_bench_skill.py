"""``make bench skill``'s variants: each is the standard curriculum with one change that the curriculum
loader really applies, and an ablation is compared with seed0 instead of widening the seed/split spread."""

from __future__ import annotations

import pytest
import yaml

from bench import skill
from gwm_assets.resources.paths import curriculum_path
from gwm_model.curriculum.spec import load_curriculum


def test_each_variant_writes_a_curriculum_whose_training_carries_its_change(tmp_path):
    base = yaml.safe_load(curriculum_path().read_text())
    profile = base.get("default_profile", "cpu")
    named = skill.variants(axis_years=30.0)
    assert {"seed0", "seed1", "seed2", "train_end-3y", "train_end+3y", *skill.ABLATIONS, *skill.HORIZONS} <= set(named)
    default = load_curriculum(curriculum_path()).hyperparameters("basic_finance", profile).train
    assert default.target_space == "level"
    for name, change in named.items():
        curriculum = load_curriculum(skill.write_curriculum(base, change, profile, tmp_path / f"{name}.yaml"))
        train = curriculum.hyperparameters("basic_finance", profile).train
        assert train.seed == change["seed"]
        assert train.target_space == ("change" if name == "change_space" else "level")
        assert train.select_on == ("masked" if name == "masked_selection" else "forecast")
        rates = (train.masking.cell_rate, train.masking.field_rate, train.masking.span_rate)
        masked = name in ("masked_objective", "masked_selection")
        assert rates == ((0.15, 0.15, 0.25) if masked else (0, 0, 0))  # the default: the forecasting task alone
        assert train.masking.future_rate == 1.0
        assert train.horizon == (13 if name == "horizon13" else default.horizon)
        assert curriculum.hyperparameters("full_integration", profile).train.horizon == train.horizon  # every tier
        model = curriculum.hyperparameters("basic_finance", profile).model
        assert model.relative_inputs is (name != "level_inputs")
        fraction = yaml.safe_load((tmp_path / f"{name}.yaml").read_text())["canvas"]["train_fraction"]
        assert fraction == round(base["canvas"]["train_fraction"] + change.get("train_fraction_shift", 0.0), 4)


def test_the_chosen_profile_is_the_one_the_written_curriculum_trains_with(tmp_path):
    base = yaml.safe_load(curriculum_path().read_text())
    written = skill.write_curriculum(base, {"seed": 2}, "quality", tmp_path / "quality.yaml")
    hyper = load_curriculum(written).hyperparameters("basic_finance")  # no profile named: the file's default
    assert hyper.profile == "quality" and hyper.train.seed == 2 and "dfm" in hyper.evaluation.baselines


def _scores(median: float, worse: int) -> dict[str, object]:
    return {"median_group_skill": median, "groups_worse_than_naive": worse, "forecastable_group_skill": None,
            "groups": {"financial.fx": {"n_cells": 400, "model": median, "model_raw": median - 0.5}}}


def test_an_ablation_sits_beside_seed0_and_stays_out_of_the_spread():
    per_variant = {"seed0": {"n": _scores(0.01, 0)}, "seed1": {"n": _scores(0.03, 0)},
                   "change_space": {"n": _scores(-0.2, 2)}}
    out = skill.summarise(per_variant)
    spread = out["spread"]["n"]
    assert spread["median_group_skill"] == pytest.approx({"median": 0.02, "min": 0.01, "max": 0.03, "n": 2})
    assert spread["worse_than_naive_max"] == 0              # the ablation's two worse groups are not the model's
    row = out["ablation"]["n"]["change_space"]
    assert row == {"median_group_skill": -0.2, "groups_worse_than_naive": 2, "forecastable_group_skill": None,
                   "seed0_median_group_skill": 0.01}
    assert out["ablation"]["n"]["no_gate_median_group_skill"] == pytest.approx(-0.48)


def test_scores_keep_the_classical_models_per_group_and_per_horizon(tmp_path):
    import duckdb

    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as conn:
        columns = ", ".join(f"{name} DOUBLE" for name in skill.SCORED)
        conn.execute(f"CREATE TABLE checkpoints (node VARCHAR, {columns}, forecastable_groups VARCHAR[], path VARCHAR)")
        conn.execute("CREATE TABLE canvases (node VARCHAR, train_end DATE)")
        conn.execute("CREATE TABLE forecast_scores (node VARCHAR, field_group VARCHAR, horizon VARCHAR, "
                     "forecaster VARCHAR, n_cells INTEGER, skill DOUBLE, dm_pvalue DOUBLE)")
        values = ", ".join(["0.1"] * len(skill.SCORED))
        conn.execute(f"INSERT INTO checkpoints VALUES ('econ', {values}, ['country_us.macro'], ?)", [str(tmp_path)])
        conn.execute(f"INSERT INTO checkpoints VALUES ('untrained', {values}, [], NULL)")
        (tmp_path / "manifest.json").write_text('{"evaluation": {"summary": {"imputation_ratio": 0.8}}}')
        conn.execute("INSERT INTO canvases VALUES ('econ', DATE '2014-01-06'), ('untrained', DATE '2014-01-06')")
        macro = "country_us.macro"
        rows = [(macro, "all", "model", 400, 0.16, 0.001), (macro, "all", "dfm", 400, 0.05, 0.3),
                (macro, "all", "ar", 400, 0.15, 0.01), (macro, "3", "model", 80, 0.2, 0.1),
                (macro, "3", "dfm", 80, 0.1, 0.2), (macro, "context", "model", 50, 0.3, 0.1),
                ("financial.fx", "all", "model", 40, 0.5, 0.1), ("financial.fx", "3", "model", 10, 0.5, 0.1)]
        conn.executemany("INSERT INTO forecast_scores VALUES ('econ', ?, ?, ?, ?, ?, ?)", rows)
    everything = skill.read_scores(path)
    assert everything["untrained"]["imputation_ratio"] is None  # no checkpoint directory: nothing, not 0
    scores = everything["econ"]
    macro = scores["groups"]["country_us.macro"]
    assert (macro["model"], macro["ar"], macro["dfm"], macro["dm_pvalue"]) == (0.16, 0.15, 0.05, 0.001)
    assert macro["by_horizon"] == {"3": {"model": 0.2, "dfm": 0.1}}  # no pooled or context rows
    assert set(scores["groups"]) == {"country_us.macro"}  # a group under 100 cells is not scored
    assert scores["train_end"] == "2014-01-06"
    assert scores["imputation_ratio"] == 0.8


def test_a_longer_horizon_is_reported_per_horizon_and_stays_out_of_the_spread():
    def scores(median: float) -> dict[str, object]:
        row = _scores(median, 0)
        row["groups"]["financial.fx"]["by_horizon"] = {"1": {"model": 0.04, "ar": 0.03}, "2": {"model": 0.0},
                                                       "13": {"model": -0.01, "ar": 0.02, "dfm": 0.05}}
        row["groups"]["country_us.macro"] = {"n_cells": 500, "model": 0.2, "by_horizon": {"13": {"model": 0.1}}}
        return row

    out = skill.summarise({"seed0": {"n": _scores(0.01, 0)}, "horizon13": {"n": scores(-0.3)}})
    assert out["spread"]["n"]["median_group_skill"]["n"] == 1  # seed0 alone: horizon13 scores other cells
    assert "horizon13" not in out["ablation"]["n"]
    node = out["horizons"]["horizon13"]["n"]
    assert node["groups"]["financial.fx"] == {"1": {"model": 0.04, "ar": 0.03},
                                              "13": {"model": -0.01, "ar": 0.02, "dfm": 0.05}}
    assert node["median_group_skill"] == pytest.approx({"1": 0.04, "13": 0.045})
