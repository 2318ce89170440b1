"""Connectivity: dense within a group, parent <-> child only through coarse fields."""

from __future__ import annotations

import numpy as np

from gwm_model.canvas import Connectivity, compile_canvas


def test_dense_within_a_group(world):
    p = world.project(["regime"])
    conn = Connectivity.from_projection(p)
    assert conn.num_edges == len(p) ** 2 and len(p) == 18  # one group (coarse + 17 leaves): every ordered pair
    assert conn.adjacency.all()


def test_parent_child_traffic_goes_through_coarse_fields(world):
    p = world.project(["country_us.macro"])
    conn = Connectivity.from_projection(p)
    adj = conn.adjacency
    i = p.index_of
    cpi, core = i["country_us.macro.inflation.headline_cpi"], i["country_us.macro.inflation.core_cpi"]
    inflation, macro = i["country_us.macro.inflation"], i["country_us.macro"]
    unemployment = i["country_us.macro.labor.unemployment_rate"]
    gdp_value = i["country_us.macro.output.gdp_official.value"]
    gdp_official = i["country_us.macro.output.gdp_official"]
    assert adj[cpi, core] and adj[core, cpi]  # same group
    assert adj[cpi, inflation] and adj[inflation, cpi]  # leaf <-> its group's coarse field
    assert adj[inflation, macro] and adj[inflation, i["country_us.macro.labor"]]  # siblings via parent group
    assert not adj[cpi, unemployment] and not adj[cpi, macro]  # other subtrees only through coarse fields
    assert adj[gdp_value, gdp_official] and not adj[gdp_value, i["country_us.macro.output.gdp_nowcast"]]
    assert (adj == adj.T).all()
    assert adj.diagonal().all()


def test_every_field_reaches_every_other(world):
    adj = Connectivity.from_projection(world.project("*")).adjacency
    seen = np.zeros(adj.shape[0], dtype=bool)
    frontier = np.zeros_like(seen)
    frontier[0] = True
    while frontier.any():  # breadth-first over the field graph
        seen |= frontier
        frontier = adj[frontier].any(axis=0) & ~seen
    assert seen.all()


def test_position_mask_matches_field_edges(world):
    compiled = compile_canvas(world.project(["financial", "regime"]))
    layout, conn = compiled.layout, compiled.connectivity
    mask = conn.position_mask(layout)
    field = layout.position_field
    assert mask.shape == (layout.num_positions, layout.num_positions)
    used = np.flatnonzero(field >= 0)
    assert (mask[np.ix_(used, used)] == conn.adjacency[np.ix_(field[used], field[used])]).all()
    empty = np.flatnonzero(field < 0)
    assert mask[empty].sum() == empty.size and mask[empty, empty].all()  # self only: no empty softmax rows
    q, k = conn.position_edges(layout)
    assert q.size == int(mask[np.ix_(used, used)].sum())
    assert mask[q, k].all()


def test_layout_must_match_projection(world):
    a = compile_canvas(world.project(["financial"]))
    b = compile_canvas(world.project(["regime"]))
    try:
        a.connectivity.position_mask(b.layout)
    except ValueError as exc:
        assert "different projection" in str(exc)
    else:
        raise AssertionError("a mismatched layout must be refused")
