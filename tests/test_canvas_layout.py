"""Canvas layout: deterministic packing keyed by path, sizes checked, fast for the whole world."""

from __future__ import annotations

import time

import numpy as np
import pytest

from gwm_model.canvas import CanvasLayout, compile_canvas, pack_layout
from gwm_model.schema import SchemaError, load_schema


def assert_valid(layout: CanvasLayout, projection):
    grid = np.full((layout.H, layout.W), -1)
    for i, (p, spec) in enumerate(zip(layout.placements, projection.fields, strict=True)):
        assert p.path == spec.path and (p.h, p.w) == (spec.h, spec.w)
        assert 0 <= p.row and p.row + p.h <= layout.H and 0 <= p.col and p.col + p.w <= layout.W
        block = grid[p.row:p.row + p.h, p.col:p.col + p.w]
        assert (block == -1).all(), f"{p.path} overlaps another field"
        block[:] = i
    assert (grid.reshape(-1) == layout.position_field).all()
    assert layout.used_positions == projection.positions


def test_full_world_packs_without_overlap(world):
    projection = world.project("*")
    layout = pack_layout(projection)
    assert_valid(layout, projection)
    assert layout.utilisation > 0.85  # skyline packing wastes little of the grid
    for path in ("financial.yield_curves.ten_year", "regime.compressed_world_state"):
        spec = world.field(path)
        assert layout.positions(path).size == spec.h * spec.w


def test_layout_is_deterministic_and_keyed_by_path(world):
    a = pack_layout(world.project(["financial", "regime"]))
    b = pack_layout(load_schema().project(["regime", "financial"]))
    assert a == b and a.layout_hash == b.layout_hash
    assert CanvasLayout.from_dict(a.to_dict()) == a
    pos = a.positions("financial.yield_curves.ten_year")
    p = a.by_path["financial.yield_curves.ten_year"]
    assert set(pos.tolist()) == {r * a.W + c for r in range(p.row, p.row + p.h) for c in range(p.col, p.col + p.w)}


def test_given_size_is_checked(world):
    projection = world.project(["financial"])
    auto = pack_layout(projection)
    roomy = pack_layout(projection, H=auto.H + 5, W=auto.W + 5)
    assert (roomy.H, roomy.W) == (auto.H + 5, auto.W + 5)
    assert_valid(roomy, projection)
    regime = world.project(["regime"])  # 2x4 blocks leave a column free at W=9: area fits, packing not
    with pytest.raises(SchemaError, match=r"need H=20 rows at W=9, more than the given H=18"):
        pack_layout(regime, H=18, W=9)
    with pytest.raises(SchemaError, match=rf"has 40 positions but the fields need {projection.positions}\b"):
        pack_layout(projection, H=4, W=10)
    with pytest.raises(SchemaError, match=r"narrower than field"):
        pack_layout(world.project(["regime"]), W=3)


def test_compiling_the_full_world_takes_under_a_second(world):
    projection = world.project("*")  # warm caches of lazy imports
    compile_canvas(projection)
    start = time.perf_counter()
    compiled = compile_canvas(world.project("*"))
    elapsed = time.perf_counter() - start
    print(f"full world: {len(compiled.projection)} fields on {compiled.layout.H}x{compiled.layout.W}, "
          f"{compiled.connectivity.num_edges} field edges, compiled in {elapsed * 1000:.0f} ms")
    assert elapsed < 1.0
