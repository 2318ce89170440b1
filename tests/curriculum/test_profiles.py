"""Profiles: resolution order, the H100 table, validation messages, and the YAML round trip."""

from __future__ import annotations

import re

import pytest
import yaml

from gwm_model.curriculum import (
    STANDARD_CURRICULUM,
    CurriculumError,
    EvaluationSettings,
    MergeSettings,
    load_curriculum,
    load_curriculum_text,
)

NODES = """
nodes:
  - {name: a, tier: 0, include: [financial], data_sources: []}
  - {name: b, tier: 0, include: [resources], data_sources: []}
  - {name: ab, tier: 1, include: [financial, resources], parents: [a, b], data_sources: []}
"""


def with_profiles(profiles: dict, **top) -> str:
    return yaml.safe_dump({**top, "profiles": profiles}) + NODES


def fails(text: str, *fragments: str) -> str:
    with pytest.raises(CurriculumError) as info:
        load_curriculum_text(text, source="cur.yaml")
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.fixture(scope="module")
def standard():
    return load_curriculum(STANDARD_CURRICULUM)


def test_base_then_tier_then_node():
    text = with_profiles({"p": {
        "model": {"d_model": 16, "n_layers": 1},
        "train": {"lr": 1.0e-3, "steps": 10, "batch_size": 8, "masking": {"cell_rate": 0.3, "span_max": 4}},
        "evaluation": {"max_anchors": 50},
        "tiers": {0: {"train": {"steps": 20}}, 1: {"model": {"n_layers": 2}, "train": {"lr": 5.0e-4, "steps": 30}}},
        "nodes": {"ab": {"train": {"lr": 1.0e-4, "masking": {"cell_rate": 0.5}}, "merge": {"method": "ties"}},
                  "b": {"evaluation": {"baselines": ["persistence"]}}}}})
    c = load_curriculum_text(text)
    a, b, ab = (c.hyperparameters(n) for n in ("a", "b", "ab"))
    assert (a.train.steps, a.train.lr, a.train.batch_size, a.model.n_layers) == (20, 1.0e-3, 8, 1)
    assert b.evaluation == EvaluationSettings(baselines=("persistence",), max_anchors=50)
    assert a.evaluation.baselines == ("persistence", "ar")
    # the tier beats the base, the node beats the tier, untouched keys fall through
    assert (ab.model.n_layers, ab.train.steps, ab.train.lr, ab.train.batch_size) == (2, 30, 1.0e-4, 8)
    assert ab.merge == MergeSettings(method="ties", ties_density=0.2)
    # masking merges key by key: the node's cell_rate, the base's span_max
    assert (ab.train.masking.cell_rate, ab.train.masking.span_max) == (0.5, 4)
    assert (a.train.masking.cell_rate, a.train.masking.span_max) == (0.3, 4)
    assert ab.to_dict()["train"]["masking"]["cell_rate"] == 0.5 and ab.profile == "p" and ab.node == "ab"


def test_a_tier_without_an_entry_takes_the_nearest_lower_one():
    text = yaml.safe_dump({"profiles": {"p": {"model": {"n_layers": 1}, "tiers": {1: {"model": {"n_layers": 3}}}}}})
    text += NODES + "  - {name: top, tier: 2, include: ['*'], parents: [ab], data_sources: []}\n"
    assert load_curriculum_text(text).hyperparameters("top").model.n_layers == 3


def test_h100_profile_is_the_seed_table(standard):
    table = {0: (6, 64, 2e-4, 10_000), 1: (8, 48, 1e-4, 15_000), 2: (10, 32, 5e-5, 20_000), 3: (12, 24, 3e-5, 30_000)}
    assert standard.profile_names == ("cpu", "quality", "h100") and standard.default_profile == "cpu"
    for name, node in standard.nodes.items():
        hp = standard.hyperparameters(name, "h100")
        layers, batch, lr, steps = table[node.tier]
        assert (hp.model.d_model, hp.model.n_loops, hp.model.n_heads) == (128, 3, 8)
        assert (hp.model.n_layers, hp.train.batch_size, hp.train.steps) == (layers, batch, steps), name
        assert hp.train.lr == pytest.approx(lr) and isinstance(hp.train.lr, float)
        assert (hp.train.device, hp.train.precision) == ("cuda", "bf16")
        assert hp.evaluation.baselines == ("persistence", "ar", "dfm") and hp.evaluation.max_anchors == 300
    trunk = standard.trunk_hyperparameters("h100")
    assert trunk.node == "trunk" and trunk.train.steps == 2000 and trunk.model.n_layers == 6
    assert trunk.train.lr == pytest.approx(2e-4)


def test_quality_profile_is_the_cpu_model_trained_longer_and_scored_against_dfm(standard):
    def settings(name, profile=None):
        return standard.trunk_hyperparameters(profile) if name == "trunk" else standard.hyperparameters(name, profile)

    for name in [*standard.nodes, "trunk"]:
        quick, long = settings(name), settings(name, "quality")
        assert long.model == quick.model, name  # the same network: only the budget and the scoring change
        assert long.train.steps >= 2 * quick.train.steps and long.train.eval_steps, name
        assert (long.train.context, long.train.horizon) == (quick.train.context, quick.train.horizon)
        assert "dfm" in long.evaluation.baselines and long.evaluation.max_anchors > quick.evaluation.max_anchors


def test_cpu_profile_is_the_default(standard):
    hp = standard.hyperparameters("basic_finance")
    assert hp.profile == "cpu"
    assert (hp.model.d_model, hp.model.n_layers, hp.model.n_loops) == (32, 1, 2)
    assert (hp.train.context, hp.train.steps, hp.train.lr, hp.train.batch_size) == (12, 120, 2.0e-3, 16)
    top = standard.hyperparameters("full_integration")
    assert (top.model.n_layers, top.train.steps, top.train.lr, top.train.batch_size) == (3, 64, 5.0e-4, 8)
    assert top.evaluation.max_anchors == 64 and hp.evaluation.max_anchors == 120  # a tier may override evaluation
    policy = standard.hyperparameters("policy_impact").train
    assert (policy.steps, policy.batch_size) == (100, 8)
    assert standard.trunk_hyperparameters().train.steps == 80
    assert standard.trunk_hyperparameters().model == hp.model


def test_files_without_profiles_get_the_builtin_cpu_profile(standard):
    c = load_curriculum_text(NODES)
    assert c.profile_names == ("cpu",) and c.default_profile == "cpu"
    for name in ("a", "ab"):
        assert c.hyperparameters(name).to_dict()["model"] == standard.hyperparameters(
            "basic_finance" if name == "a" else "econ_drives_finance").to_dict()["model"]


def test_first_profile_is_the_default_without_cpu():
    c = load_curriculum_text(with_profiles({"big": {}, "small": {}}))
    assert c.default_profile == "big" and c.hyperparameters("a").profile == "big"


def test_numeric_strings_are_read_as_numbers():
    c = load_curriculum_text(NODES + "profiles:\n  p:\n    train: {lr: 2e-4, steps: 1e3}\n")
    hp = c.hyperparameters("a")
    assert hp.train.lr == 2e-4 and hp.train.steps == 1000 and isinstance(hp.train.steps, int)


def test_unknown_profile_lists_the_available_ones(standard):
    with pytest.raises(CurriculumError, match=re.escape("no profile 'a100'. Available: cpu, quality, h100")):
        standard.hyperparameters("basic_finance", "a100")
    fails(with_profiles({"p": {}}, default_profile="q"), "default_profile 'q' is not defined", "Available: p")


@pytest.mark.parametrize(("profile", "fragments"), [
    ({"model": {"d_modle": 8}}, ["cur.yaml", "profile 'p'", "unknown model key(s) ['d_modle']"]),
    ({"tiers": {1: {"train": {"learning_rate": 1}}}}, ["profile 'p', tiers[1]", "unknown train key(s)"]),
    ({"train": {"masking": {"cell": 0.1}}}, ["profile 'p'", "unknown masking key(s) ['cell']"]),
    ({"optimizer": {}}, ["profile 'p'", "unknown profile key(s) ['optimizer']"]),
    ({"tiers": {1: {"loss": {}}}}, ["tiers[1]", "unknown section(s) ['loss']"]),
    ({"tiers": {"first": {}}}, ["profile 'p'", "tiers key 'first' is not a tier"]),
    ({"tiers": {-1: {}}}, ["tiers key -1 is not a tier"]),
    ({"nodes": {"ghost": {"train": {"steps": 1}}}}, ["profile 'p'", "'ghost', which is not a node", "a, b, ab"]),
    ({"merge": {"method": "slerp"}}, ["profile 'p', node 'a'", "unknown merge method 'slerp'", "mean, weighted, ties"]),
    ({"merge": {"method": "ties", "ties_density": 1.5}}, ["ties_density must be a number in (0, 1]"]),
    ({"evaluation": {"baselines": ["oracle"]}}, ["unknown baseline(s) ['oracle']"]),
    ({"train": {"lr": -1.0}}, ["profile 'p', node 'a' (tier 0)", "lr must be positive"]),
    ({"tiers": {1: {"model": {"d_model": 48}}}},
     ["node 'ab' (tier 1) has d_model 48 but tier 0 has 64", "needs one width", "base model section"]),
    ({"nodes": {"b": {"model": {"n_loops": 5}}}}, ["node 'b' (tier 0) has n_loops 5"]),
    ({"nodes": {"a": {"model": {"n_layers": 4}}}, "tiers": {1: {"model": {"n_layers": 2}}}},
     ["node 'ab' has n_layers 2 but its parent 'a' has 4", "may only grow", "n_layers >= 4"]),
    ({"model": {"n_layers": 3}, "nodes": {"b": {"model": {"n_layers": 2}}}},
     ["node 'b' has n_layers 2 but the shared trunk", "may only grow"]),
    ({"trunk": {"model": {"n_layers": 9}}}, ["profile 'p', trunk", "differs from tier 0's model"]),
])
def test_broken_profiles_name_the_file_profile_place_and_fix(profile, fragments):
    fails(with_profiles({"p": profile}), *fragments)


def test_trunk_model_equal_to_tier_zero_is_accepted():
    c = load_curriculum_text(with_profiles({"p": {"model": {"n_layers": 2}, "trunk": {"model": {"n_layers": 2},
                                                                                        "train": {"steps": 7}}}}))
    trunk = c.trunk_hyperparameters()
    assert trunk.model.n_layers == 2 and trunk.train.steps == 7


def test_existing_checks_still_hold_and_node_names_are_asset_safe():
    fails("nodes:\n  - {name: a, tier: 0, include: [financial]}\n", "data_sources: [] to say it has none")
    fails("nodes:\n  - {name: a, tier: 0, data_sources: []}\n", "no 'include'", "include: ['*']")
    fails("nodes:\n  - {name: a+b, tier: 0, include: [financial], data_sources: []}\n", "letters, digits")
    fails("nodes:\n  - {name: trunk, tier: 0, include: [financial], data_sources: []}\n", "cannot be 'trunk'")
    fails(NODES + "nodez: []\n", "unknown top-level key(s) ['nodez']")


def test_standard_round_trips_through_yaml(standard, world):
    again = load_curriculum_text(standard.to_yaml(), schema=world)
    assert again.to_dict() == standard.to_dict()
    assert list(again.nodes) == list(standard.nodes) and again.nodes == standard.nodes
    assert again.profiles == standard.profiles and again.canvas == standard.canvas
    for name in standard.nodes:
        for profile in standard.profile_names:
            assert again.hyperparameters(name, profile) == standard.hyperparameters(name, profile)


def test_round_trip_keeps_node_canvas_overrides_dates_and_notes():
    text = ("name: small\ncanvas: {start: 2001-02-03, end: 2020-01-01}\nnotes: [hello]\n"
            "nodes:\n  - {name: m, tier: 0, include: [country_us.macro], data_sources: [fred],"
            " canvas: {frequency: monthly, start: 2005-01-01}, entities: {firm_NVDA: Business}}\n")
    c = load_curriculum_text(text)
    again = load_curriculum_text(c.to_yaml())
    assert again.nodes == c.nodes and again.notes == ("hello",) and again.canvas == c.canvas
    assert again.nodes["m"].canvas.frequency == "monthly" and str(again.canvas.start) == "2001-02-03"
