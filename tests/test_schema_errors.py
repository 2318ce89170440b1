"""Bad schema files fail with the file, the line, the path and the fix."""

from __future__ import annotations

import pytest

from gwm_model.schema import SchemaError, load_schema


def broken(mini_schema, old: str, new: str):
    text = mini_schema.read_text()
    assert old in text
    mini_schema.write_text(text.replace(old, new, 1))
    return mini_schema


def line_of(path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_mini_schema_loads(mini_schema):
    world = load_schema(mini_schema)
    assert [f.path for f in world.fields] == [
        "markets", "markets.equity", "markets.vol", "country_us", "country_us.gdp",
        "country_us.prices", "country_us.prices.cpi"]
    assert world.field("markets").period == "daily"  # median of (tick, daily), upper
    assert not world.field("markets.vol").is_output
    assert world.field("country_us").description == "United States: a national economy"


def test_duplicate_path(mini_schema):
    twin = "    equity: {size: 1x1, period: tick, unit: index, about: again}\n"
    path = broken(mini_schema, "    vol: {", twin + "    vol: {")
    with pytest.raises(SchemaError) as err:
        load_schema(path)
    msg = str(err.value)
    assert f"{path}:{line_of(path, 'about: again')}" in msg
    assert "'markets.equity'" in msg and "duplicate path" in msg and "first defined on line" in msg
    assert "Fix:" in msg


def test_unknown_period(mini_schema):
    path = broken(mini_schema, "period: monthly", "period: montly")
    with pytest.raises(SchemaError) as err:
        load_schema(path)
    msg = str(err.value)
    assert f"{path}:{line_of(path, 'montly')}" in msg
    assert "templates.Country.prices.cpi" not in msg  # template paths are relative to the instance
    assert "'prices.cpi'" in msg and "unknown period 'montly'" in msg and "'monthly'" in msg
    assert "Fix: use one of tick, daily" in msg


def test_negative_weight(mini_schema):
    path = broken(mini_schema, "weight: 2.0", "weight: -1")
    expected = r"mini\.yaml:\d+ at 'prices.cpi' \(template Country\): loss weight '-1' .*Fix: set 'weight:'"
    with pytest.raises(SchemaError, match=expected):
        load_schema(path)


@pytest.mark.parametrize("old,new,expected", [
    ("size: 2x2", "size: 0x2", "footprint '0x2' is not a positive HxW"),
    ("size: 2x2", "size: big", "footprint 'big' is not a positive HxW"),
    ("unit: pct_yoy", "unit: pct_yyo", "unknown unit 'pct_yyo' (did you mean 'pct_yoy'?). Fix:"),
    ("entity: Country", "entity: Contry", "unknown entity type 'Contry' (did you mean 'Country'?). Fix:"),
    ("input_only: true", "input_only: maybe", "input_only must be true or false"),
    (", about: a stock index", "", "field has no 'about'"),
    ("about: price level dynamics\n", "", "group has no 'about'"),
    ("{size: 1x1, period: tick", "{size: 1x1, periodd: daily, period: tick", "unknown field key 'periodd'"),
    ("country_us: {", "us: {", "a Country instance must be named 'country_<id>'"),
    ("    prefix: country_\n", "", "a template needs a name prefix"),
    ("world:", "wrld:", "unknown top-level section"),
])
def test_each_mistake_names_line_and_fix(mini_schema, old, new, expected):
    path = broken(mini_schema, old, new)
    with pytest.raises(SchemaError) as err:
        load_schema(path)
    msg = str(err.value)
    assert expected in msg
    assert msg.startswith(f"{path}:") and "Fix:" in msg


def test_invalid_yaml_names_the_line(mini_schema):
    path = broken(mini_schema, "equity: {size: 1x1", "equity: {size: [1x1")
    with pytest.raises(SchemaError, match=r"mini\.yaml:\d+: not valid YAML"):
        load_schema(path)


def test_missing_file(tmp_path):
    with pytest.raises(SchemaError, match="schema file not found"):
        load_schema(tmp_path / "nope.yaml")
