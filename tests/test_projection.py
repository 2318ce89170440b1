"""Projections: prefixes, excludes, entities, canonical paths, and the 12 standard DAG nodes."""

from __future__ import annotations

import pytest

from gwm_model.schema import SchemaError

# node -> (include, entities, fields, positions). The reference tree's counts, plus what we added for real
# data: one field per stock index (instead of a shared slot), six more Treasury tenors, Aaa/Baa yields,
# Brent, and five Fama-French factors (financial +18 fields / +15 positions, resources +1 / +1); later the
# fields issue 16 added for real data (see tests/test_world_schema.py).
STANDARD_NODES = {
    "basic_finance": (["financial"], None, 110, 188),
    "basic_economics": (["country_us.macro", "country_cn.macro", "country_eu.macro"], None, 393, 561),
    "basic_politics": (["country_us.politics", "country_cn.politics", "country_eu.politics",
                        "events.social_signal"], None, 121, 293),
    "basic_resources": (["resources"], None, 58, 99),
    "basic_technology": (["technology"], None, 35, 51),
    "basic_narratives": (["narratives", "events"], None, 53, 203),
    "econ_drives_finance": (["financial", "country_us.macro", "regime", "forecasts.macro",
                             "forecasts.financial"], None, 275, 584),
    "geopolitics_commodities": (["resources", "country_us.politics", "country_cn.politics", "events",
                                 "regime"], None, 169, 559),
    "narratives_drive_markets": (["narratives", "financial.equities", "financial.credit", "events", "regime"],
                                 None, 115, 436),
    "corporate_strategy": (["financial.equities", "country_us.macro", "regime", "forecasts.business"],
                           ["firm_AAPL", "firm_NVDA", "firm_MSFT"], 421, 946),
    "policy_impact": (["country_us", "country_cn.macro", "country_eu.macro", "financial", "interventions",
                       "regime", "forecasts"], {"country_jp": "Country", "country_uk": "Country"}, 1028, 1967),
    "full_integration": (["*"], None, 1402, 2910),
}


@pytest.mark.parametrize("node", list(STANDARD_NODES))
def test_standard_dag_node_projections(world, node):
    include, entities, n_fields, positions = STANDARD_NODES[node]
    projection = world.project(include, entities=entities)
    print(f"{node}: {len(projection)} fields ({len(projection.leaves)} leaf + {len(projection.coarse)} coarse), "
          f"{projection.positions} positions")
    assert (len(projection), projection.positions) == (n_fields, positions)
    assert len(set(projection.paths)) == len(projection.paths)


def test_sub_path_include_keeps_canonical_paths(world):
    p = world.project(["country_us.macro"])
    assert p.paths[0] == "country_us.macro"  # the include root's coarse field, not its ancestors
    assert "country_us" not in p
    assert "country_us.macro.inflation.headline_cpi" in p
    assert p.field("country_us.macro.inflation.headline_cpi") is world.field("country_us.macro.inflation.headline_cpi")
    assert all(path.startswith("country_us.macro") for path in p.paths)


def test_order_is_canonical_and_independent_of_include_order(world):
    a = world.project(["regime", "financial", "financial.credit"])
    b = world.project(["financial", "regime"])
    assert a.paths == b.paths
    order = {f.path: i for i, f in enumerate(world.fields)}
    assert [order[p] for p in a.paths] == sorted(order[p] for p in a.paths)


def test_exclude_removes_subtrees(world):
    p = world.project(["financial"], exclude=["financial.crypto", "financial.fx.dxy"])
    assert not any(path.startswith("financial.crypto") for path in p.paths)
    assert "financial.fx.dxy" not in p and "financial.fx" in p
    full = world.project(["financial"])
    assert len(full) - len(p) == len([x for x in full.paths if x.startswith("financial.crypto")]) + 1


def test_entities_instantiate_templates(world):
    p = world.project(["regime"], entities={"firm_NVDA": "Business", "country_jp": None})
    assert "firm_NVDA.financials.revenue" in p
    assert p.field("firm_NVDA.financials.revenue").entity_type == "Business"
    assert p.field("country_jp.macro.inflation.headline_cpi").entity == "country_jp"
    assert dict(p.entities) == {"firm_NVDA": "Business", "country_jp": "Country"}
    # the default world is not changed by a projection
    assert "firm_NVDA" not in world


def test_include_into_a_new_entity(world):
    p = world.project(["firm_NVDA.financials"], entities=["firm_NVDA"])
    assert "firm_NVDA.financials.revenue" in p


@pytest.mark.parametrize("bad,suggestion", [
    ("financial.yeild_curves", "financial.yield_curves"),
    ("finanical", "financial"),
    ("country_us.macro.inflaton", "country_us.macro.inflation"),
])
def test_unknown_include_names_closest_paths(world, bad, suggestion):
    with pytest.raises(SchemaError) as err:
        world.project([bad])
    assert f"unknown include path '{bad}'" in str(err.value)
    assert suggestion in str(err.value)


def test_undeclared_entity_gets_a_hint(world):
    with pytest.raises(SchemaError, match=r"declare it as an entity, e.g. entities=\{'country_jp': 'Country'\}"):
        world.project(["country_jp.macro"])


def test_bad_entities_and_excludes(world):
    with pytest.raises(SchemaError, match="unknown exclude path 'financial.cryptoo'"):
        world.project(["financial"], exclude=["financial.cryptoo"])
    with pytest.raises(SchemaError, match="unknown entity type 'Busines'"):
        world.project(["regime"], entities={"firm_NVDA": "Busines"})
    with pytest.raises(SchemaError, match="is a Country in the world, not a Business"):
        world.project(["regime"], entities={"country_us": "Business"})
    with pytest.raises(SchemaError, match="has no known type"):
        world.project(["regime"], entities=["acme"])
    with pytest.raises(SchemaError, match="selects no fields"):
        world.project(["financial.crypto"], exclude=["financial"])
