"""World schema load and canvas compilation, against straightforward baselines.

- load: composing world.yaml with libyaml (what gwm uses) vs PyYAML's pure-Python composer.
- connectivity: array-built group edges (what gwm uses) vs a Python loop over group member pairs.
"""

from __future__ import annotations

import numpy as np
import yaml

from bench.timing import median_seconds
from gwm_model.canvas import Connectivity, compile_canvas
from gwm_model.schema import DEFAULT_SCHEMA_PATH, load_schema
from gwm_model.schema import loader as schema_loader


def loop_connectivity(projection) -> set[tuple[int, int]]:
    """Baseline: the same edges built with Python loops over each group's members."""
    index = projection.index_of
    groups: dict[int, list[int]] = {}
    for i, spec in enumerate(projection.fields):
        parent = spec.parent
        groups.setdefault(index[parent] + 1 if parent in index else 0, []).append(i)
        if spec.kind == "coarse":
            groups.setdefault(i + 1, []).append(i)
    edges = set()
    for members in groups.values():
        for a in members:
            for b in members:
                edges.add((a, b))
    return edges


def loop_position_mask(conn: Connectivity, layout) -> np.ndarray:
    """Baseline: fill the position mask block by block, one field edge at a time."""
    positions = [layout.positions(path) for path in layout.paths]
    mask = np.zeros((layout.num_positions, layout.num_positions), dtype=bool)
    for a, b in zip(conn.src.tolist(), conn.dst.tolist(), strict=True):
        mask[np.ix_(positions[a], positions[b])] = True
    empty = np.flatnonzero(layout.position_field < 0)
    mask[empty, empty] = True
    return mask


def run() -> dict[str, object]:
    world = load_schema()
    projection = world.project("*")

    fast_load = median_seconds(lambda: load_schema(DEFAULT_SCHEMA_PATH))
    original = schema_loader._Loader
    schema_loader._Loader = yaml.SafeLoader
    try:
        slow_load = median_seconds(lambda: load_schema(DEFAULT_SCHEMA_PATH), repeats=3)
    finally:
        schema_loader._Loader = original

    vectorised = median_seconds(lambda: Connectivity.from_projection(projection))
    looped = median_seconds(lambda: loop_connectivity(projection), repeats=3)
    conn = Connectivity.from_projection(projection)
    same = set(zip(conn.src.tolist(), conn.dst.tolist(), strict=True)) == loop_connectivity(projection)

    compile_full = median_seconds(lambda: compile_canvas(world.project("*")))
    layout = compile_canvas(projection).layout
    mask = median_seconds(lambda: conn.position_mask(layout), repeats=5)
    mask_loop = median_seconds(lambda: loop_position_mask(conn, layout), repeats=3)
    mask_same = bool((conn.position_mask(layout) == loop_position_mask(conn, layout)).all())
    return {
        "fields": len(projection), "field_edges": conn.num_edges, "edges_match_baseline": same,
        "load_world_s": {"gwm": fast_load, "baseline_pure_python_yaml": slow_load,
                         "speedup": slow_load / fast_load},
        "connectivity_s": {"gwm": vectorised, "baseline_python_loops": looped, "speedup": looped / vectorised},
        "compile_full_world_s": compile_full,
        "position_mask_s": {"gwm": mask, "baseline_loop_over_edges": mask_loop, "speedup": mask_loop / mask,
                            "masks_match_baseline": mask_same, "shape": [layout.num_positions] * 2},
    }
