"""The seed's plan/stages/builds_on format: converted on load, with its defects fixed and its mistakes named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gwm_model.curriculum import CurriculumError, load_curriculum, load_curriculum_text

EXAMPLE = Path(__file__).resolve().parents[2] / "curricula" / "seed_example.yaml"
FINANCE = "foundations_financial_markets_yields"
MACRO = "foundations_macroeconomic_fundamentals_output"


def seed(plan: list, **top) -> str:
    return yaml.safe_dump({"name": "s", **top, "plan": plan})


def stage(include=("financial",), datasets=("fred_rates",), **extra) -> dict:
    out = {"description": "Some stage here", **extra}
    if include is not None:
        out["include"] = list(include)
    if datasets is not None:
        out["datasets"] = list(datasets)
    return out


def fails(text: str, *fragments: str) -> None:
    with pytest.raises(CurriculumError) as info:
        load_curriculum_text(text, source="seed.yaml")
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_the_shipped_example_loads_and_resolves(world):
    c = load_curriculum(EXAMPLE, schema=world)
    assert list(c.nodes) == [FINANCE, MACRO, "macro_drives_markets"]
    assert [c[n].tier for n in c.nodes] == [0, 0, 1]
    assert c["macro_drives_markets"].parents == (FINANCE, MACRO)
    assert c[FINANCE].data_sources == ("yahoo", "fred") and c[MACRO].data_sources == ("fred",)
    assert c.default_profile == "seed" and c.profile_names == ("seed", "cpu")
    finance, macro, joint = (c.hyperparameters(n) for n in c.nodes)
    assert (finance.model.d_model, finance.model.n_layers, finance.model.n_loops) == (64, 6, 3)
    assert (finance.train.steps, finance.train.lr, finance.train.batch_size) == (5000, 1.0e-4, 32)
    # per-stage lr and batch size are honoured (the reference dropped them)
    assert (macro.model.n_layers, macro.train.lr, macro.train.batch_size) == (4, 2.0e-4, 48)
    assert (joint.model.n_layers, joint.train.steps, joint.train.batch_size, joint.train.lr) == (8, 8000, 24, 1.0e-4)
    assert c.hyperparameters("macro_drives_markets", "cpu").model.n_layers == 2  # GWM_PROFILE=cpu works too
    again = load_curriculum_text(c.to_yaml(), schema=world)
    assert again.nodes == c.nodes and again.profiles == c.profiles and again.default_profile == "seed"


def test_builds_on_is_resolved_by_name_not_by_position():
    plan = [{"name": "fin", "stages": [stage()]},
            {"name": "macro", "stages": [stage(include=["country_us.macro"], datasets=["fred_macro"])]},
            {"name": "joint", "builds_on": "fin", "stages": [stage(description="Macro and markets")]},
            {"name": "both", "builds_on": ["fin", "macro"], "stages": [stage(name="both_x"), stage(name="both_y")]},
            {"name": "top", "builds_on": ["both"],
             "stages": [stage(include=["*"], parents=["both_x", "joint_macro_and_markets"])]}]
    c = load_curriculum_text(seed(plan))
    assert c["joint_macro_and_markets"].parents == ("fin_some_stage_here",)
    assert c["both_x"].parents == ("fin_some_stage_here", "macro_some_stage_here") and c["both_y"].tier == 1
    top = c["top_some_stage_here"]
    assert top.parents == ("both_x", "joint_macro_and_markets") and top.tier == 2  # explicit parents win
    assert c["macro_some_stage_here"].parents == () and c["macro_some_stage_here"].data_sources == ("fred",)


def test_generated_names_are_unique_and_deterministic():
    plan = [{"name": "g", "stages": [stage(description="Rates, rates!"), stage(description="rates rates"),
                                     stage(description="")]}]
    names = list(load_curriculum_text(seed(plan)).nodes)
    assert names == ["g_rates_rates", "g_rates_rates_2", "g_3"]
    assert list(load_curriculum_text(seed(plan)).nodes) == names


def test_h_and_w_become_notes_and_unknown_datasets_are_kept():
    plan = [{"name": "g", "stages": [stage(datasets=["my_csv", "fred_macro", "fred_rates"], H=48)]}]
    c = load_curriculum_text(seed(plan, defaults={"H": 32, "W": 32, "n_layers": 2}))
    assert c["g_some_stage_here"].data_sources == ("my_csv", "fred")
    assert any("H=32" in n for n in c.notes) and any("stage 'g_some_stage_here' H=48" in n for n in c.notes)


@pytest.mark.parametrize(("plan", "fragments"), [
    ([{"name": "a", "stages": [stage()]}, {"name": "b", "builds_on": "foundations", "stages": [stage()]}],
     ["group 'b' builds on 'foundations', which is not a group", "Known groups: a, b"]),
    ([{"name": "a", "builds_on": "b", "stages": [stage()]}, {"name": "b", "stages": [stage()]}],
     ["not declared before it", "move group 'b' above 'a'"]),
    ([{"name": "a", "stages": [stage(include=None)]}],
     ["group 'a', stage 0 ('a_some_stage_here')", "no 'include'", "include: ['*'] to mean everything"]),
    ([{"name": "a", "stages": [stage(include=[])]}], ["no 'include'"]),
    ([{"name": "a", "stages": [stage(datasets=None)]}], ["no 'datasets'", "datasets: [] to say it has none"]),
    ([{"name": "a", "stages": [stage(n_layer=3)]}], ["unknown stage key(s) ['n_layer']"]),
    ([{"name": "a", "stages": [stage(parents=["ghost"])]}], ["parent 'ghost' is not a stage"]),
    ([{"name": "a", "stages": [stage(n_layers=6)]},
      {"name": "b", "builds_on": "a", "stages": [stage(n_layers=4)]}],
     ["profile 'seed'", "node 'b_some_stage_here' has n_layers 4 but its parent 'a_some_stage_here' has 6",
      "may only grow"]),
    ([{"name": "a", "stages": [stage(d_model=32)]}, {"name": "b", "stages": [stage()]}],
     ["profile 'seed'", "has d_model", "one width"]),
    ([{"name": "a", "stages": [stage(name="x", parents=["y"]), stage(name="y", parents=["x"])]}],
     ["the parents form a cycle"]),
    ([{"name": "a", "stages": [stage()]}, {"name": "a", "stages": [stage()]}], ["group 'a' is declared twice"]),
])
def test_broken_seed_files_name_the_group_stage_and_fix(plan, fragments):
    fails(seed(plan, defaults={"n_layers": 2}), *fragments)


def test_unknown_defaults_and_schema_errors_name_the_stage(world):
    fails(seed([{"name": "a", "stages": [stage()]}], defaults={"steps": 3}), "unknown defaults key(s) ['steps']")
    text = seed([{"name": "a", "stages": [stage(include=["financial.yeild_curves"])]}])
    with pytest.raises(CurriculumError, match="node 'a_some_stage_here'.*yield_curves"):
        load_curriculum_text(text, schema=world)
