"""The packaged world schema: size, shape and the promises every field keeps."""

from __future__ import annotations

from collections import Counter

from gwm_model.schema import PERIODS, GroupNode, load_schema

ENTITY_TYPES = {"Business", "Individual", "Sector", "SupplyChainNode", "Country"}


def test_world_has_the_full_tree(world):
    leaves = world.leaves
    assert len(leaves) >= 951
    assert len(world.layers) >= 25
    assert len(world.coarse) >= 139
    assert len(world.fields) == len(leaves) + len(world.coarse)
    # the per-layer leaf counts of the reference tree, plus the fields added where real data had no home
    # (issue 16: GBP rates, dividend yield; eight commodities; demand, money, industry employment, trade
    # openness, terrorism, battle deaths; for the live catalog: FX majors, broad dollar, SOFR, effective
    # funds rate, financial conditions and stress, sector ETFs; per country policy, broad-money and short
    # rates, exports and imports, business surveys; per sector its ETF price)
    per_layer = Counter(f.layer for f in leaves)
    assert per_layer["financial"] == 76 + 3 + 20 and per_layer["resources"] == 44 + 8 and per_layer["regime"] == 17
    assert per_layer["country_us"] == per_layer["country_cn"] == per_layer["country_eu"] == 105 + 61 + 8
    assert per_layer["sector_tech"] == per_layer["sector_energy"] == per_layer["sector_financials"] == 21
    assert per_layer["firm_AAPL"] == per_layer["firm_MSFT"] == 71


def test_every_leaf_is_fully_described(world):
    for f in world.leaves:
        assert f.period in PERIODS, f.path
        assert f.unit in world.units, f.path
        assert f.loss_weight >= 0 and f.h > 0 and f.w > 0, f.path
        assert len(f.description.split()) >= 5, f"{f.path}: description too short: {f.description!r}"
        assert f.description.lower().replace(" ", "_") != f.name


def test_descriptions_are_distinct_within_a_template(world):
    # one description per declared field: instances of a template share them, nothing else does
    declared = [f for f in world.leaves if f.entity in (None, "country_us", "firm_AAPL", "person_fed_chair",
                                                        "sector_tech", "sc_semiconductors")]
    counts = Counter(f.description for f in declared)
    assert [d for d, n in counts.items() if n > 1] == []


def test_coarse_field_at_every_subtree_path(world):
    def groups(node: GroupNode):
        for child in node.children:
            if isinstance(child, GroupNode):
                yield child
                yield from groups(child)

    group_paths = {g.path for g in groups(world.root)}
    coarse_paths = {f.path for f in world.coarse}
    assert group_paths == coarse_paths
    for f in world.coarse:
        assert (f.h, f.w, f.is_output, f.loss_weight, f.unit) == (1, 1, False, 0.0, "latent")
        below = [leaf.period for leaf in world.leaves if leaf.path.startswith(f.path + ".")]
        ranks = sorted(PERIODS.index(p) for p in below)
        assert PERIODS.index(f.period) == ranks[len(ranks) // 2]
    # examples from the path conventions
    for path in ("country_us", "country_us.macro", "country_us.macro.output",
                 "country_us.macro.output.gdp_official", "financial.yield_curves"):
        assert world.field(path).kind == "coarse"


def test_canonical_dotted_paths(world):
    for path in ("financial.yield_curves.ten_year", "country_us.macro.inflation.headline_cpi",
                 "country_us.macro.output.gdp_official.value", "resources.energy.crude_price",
                 "regime.growth_regime", "forecasts.macro.recession_prob_3m", "interventions.effect_3m"):
        assert world.field(path).kind == "leaf"
    assert all("__" not in f.path for f in world.fields)


def test_entities_are_typed_template_instances(world):
    assert set(world.templates) == ENTITY_TYPES
    assert world.entities["country_us"] == "Country" and world.entities["firm_AAPL"] == "Business"
    # instances of one template have the same relative structure
    rel = {}
    for name in ("country_us", "country_cn", "country_eu"):
        rel[name] = [(f.path[len(name):], f.kind, f.period, f.h, f.w, f.loss_weight)
                     for f in world.fields if f.layer == name]
    assert rel["country_us"] == rel["country_cn"] == rel["country_eu"]
    cpi = world.field("country_cn.macro.inflation.headline_cpi")
    assert (cpi.entity, cpi.entity_type) == ("country_cn", "Country")


def test_input_only_fields_are_marked(world):
    inputs = {f.path for f in world.leaves if not f.is_output}
    assert "country_us.identity" in inputs and "firm_AAPL.sector_link" in inputs
    assert all(world.field(p).effective_loss_weight == 0.0 for p in inputs)
    assert len(inputs) >= 21


def test_schema_hash_is_stable_and_content_based(world, tmp_path):
    again = load_schema()
    assert again.schema_hash == world.schema_hash
    edited = tmp_path / "world.yaml"
    text = world._source_text.replace("unit: pct_yoy, weight: 2, about: \"Headline",
                                      "unit: pct_yoy, weight: 3, about: \"Headline", 1)
    assert text != world._source_text
    edited.write_text(text)
    assert load_schema(edited).schema_hash != world.schema_hash
    edited.write_text("# a comment changes nothing\n" + world._source_text)
    assert load_schema(edited).schema_hash == world.schema_hash
