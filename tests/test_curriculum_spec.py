"""The curriculum spec: the standard 12 nodes load and resolve; broken files fail with the node and the fix."""

from __future__ import annotations

import pytest

from gwm_model.curriculum import STANDARD_CURRICULUM, CurriculumError, load_curriculum
from tests.test_projection import STANDARD_NODES


def test_standard_curriculum_has_the_twelve_nodes_with_their_projections(world):
    curriculum = load_curriculum(STANDARD_CURRICULUM, schema=world)
    assert list(curriculum.nodes) == list(STANDARD_NODES)
    order = curriculum.order()
    for name, node in curriculum.nodes.items():
        assert all(order.index(p) < order.index(name) for p in node.parents)
        projection = node.projection(world)
        assert (len(projection), projection.positions) == STANDARD_NODES[name][2:]
    assert [n for n, node in curriculum.nodes.items() if node.tier == 0] == list(STANDARD_NODES)[:6]
    assert curriculum["basic_politics"].data_sources == ("tabular", "news")  # issue 16: every specialist has data
    assert curriculum["basic_economics"].canvas.frequency == "monthly"


def write(tmp_path, body: str):
    path = tmp_path / "c.yaml"
    path.write_text(body)
    return path


NODE = "  - {{name: {name}, tier: {tier}, include: [{include}], parents: [{parents}], data_sources: []}}\n"


@pytest.mark.parametrize(("nodes", "message"), [
    (NODE.format(name="a", tier=1, include="financial", parents="b") + NODE.format(name="b", tier=2,
                                                                                  include="financial", parents="a"),
     "tier"),
    (NODE.format(name="a", tier=1, include="financial", parents="ghost"), "parent 'ghost', which is not declared"),
    ("  - {name: a, tier: 0, data_sources: []}\n", "no 'include'"),
    ("  - {name: a, tier: 0, include: [financial]}\n", "data_sources: [] to say it has none"),
    (NODE.format(name="a", tier=0, include="financial", parents="") * 2, "declared twice"),
    ("  - {name: a, tier: 0, include: [financial], data_sources: [], canvas: {frequency: hourly}}\n",
     "canvas frequency 'hourly'"),
    ("  - {name: a, tier: 0, include: [financial], data_sources: [], canvas: {start: 2020-01-01, end: 2019-01-01}}\n",
     "time axis would be empty"),
])
def test_broken_curricula_name_the_node_and_the_fix(tmp_path, nodes, message):
    with pytest.raises(CurriculumError, match=message.replace("[", r"\[").replace("]", r"\]")
                       .replace("(", r"\(").replace(")", r"\)")):
        load_curriculum(write(tmp_path, "nodes:\n" + nodes))


def test_a_cycle_cannot_pass(tmp_path):
    """Parents must sit on a lower tier, so a cycle always breaks the tier rule first."""
    body = ("nodes:\n  - {name: a, tier: 0, include: [financial], parents: [c], data_sources: []}\n"
            "  - {name: b, tier: 0, include: [financial], parents: [a], data_sources: []}\n"
            "  - {name: c, tier: 0, include: [financial], parents: [b], data_sources: []}\n")
    with pytest.raises(CurriculumError, match="a child's tier is above its parents'"):
        load_curriculum(write(tmp_path, body))


def test_an_include_that_matches_no_field_names_the_node(tmp_path, world):
    path = write(tmp_path, "nodes:\n  - {name: lost, tier: 0, include: [financial.yeild_curves], data_sources: []}\n")
    load_curriculum(path)  # without a schema only the structure is checked
    with pytest.raises(CurriculumError, match="node 'lost'.*yield_curves"):
        load_curriculum(path, schema=world)
