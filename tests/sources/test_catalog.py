"""The mapping catalog: its breadth, and the validation every entry gets when it loads."""

from __future__ import annotations

from collections import Counter

import pytest

from gwm_assets.sources.catalog import CatalogError, load_catalog

LIVE = ("fred", "yahoo", "pmi", "earnings", "news")


def test_live_catalog_reaches_every_kind_of_source(world):
    catalog = load_catalog(world)
    live = [m for m in catalog if m.source in LIVE and not m.key.startswith("corpus:")]
    assert len(live) >= 300
    per_source = Counter(m.source for m in live)
    assert per_source["fred"] >= 200 and per_source["yahoo"] >= 40 and per_source["earnings"] >= 14
    layers = {m.field.split(".")[0] for m in live}
    assert {"country_cn", "country_eu", "sector_tech", "sector_energy", "sector_financials", "firm_AAPL",
            "firm_MSFT", "resources", "technology", "narratives", "infrastructure", "regime"} <= layers
    # every firm entity has a price and its EDGAR financials
    firms = {f.entity for f in world.leaves if f.entity_type == "Business"}
    for firm in firms:
        sources = {m.source for m in live if m.field.startswith(firm + ".")}
        assert {"yahoo", "earnings"} <= sources, firm


def entry(tmp_path, line):
    path = tmp_path / "catalog.yaml"
    path.write_text("series:\n  - {source: fred, key: DGS10, field: financial.yield_curves.ten_year, "
                    "frequency: daily}\n" + line + "\n")
    return path


@pytest.mark.parametrize("line, message", [
    ("  - {source: fred, key: X1, field: financial.yield_curves.tenyear, frequency: daily}", "ten_year"),
    ("  - {source: fred, key: CPI, field: country_us.macro.labor.unemployment_rate, transform: pct_yoy, "
     "frequency: monthly}", "transform 'pct_yoy' makes pct_yoy values but the field's unit is 'percent'"),
    ("  - {source: fred, key: X2, field: firm_AAPL.latent_health, frequency: quarterly}", "latent by design"),
    ("  - {source: fred, key: X3, field: events.news_embedding, frequency: daily}", "text path only"),
    ("  - {source: fred, key: USREC, field: regime.growth_regime, transform: diff, frequency: monthly}",
     "categorical field takes the level"),
    ("  - {source: fred, key: DGS10, field: financial.yield_curves.two_year, frequency: daily}", "mapped twice"),
    ("  - {source: fred, key: DGS2, field: financial.yield_curves.ten_year, frequency: daily}",
     "already takes fred series 'DGS10'"),
])
def test_a_bad_entry_is_named_with_file_line_and_fix(tmp_path, world, line, message):
    path = entry(tmp_path, line)
    with pytest.raises(CatalogError, match="Fix:") as err:
        load_catalog(world, path)
    assert message in str(err.value) and f"{path}:3" in str(err.value)


def test_annual_growth_may_fill_an_annualised_field(tmp_path, world):
    path = entry(tmp_path, "  - {source: fred, key: GDPA, field: country_us.macro.output.gdp_official.value, "
                           "transform: pct_yoy, frequency: annual}")
    assert [m.key for m in load_catalog(world, path)] == ["DGS10", "GDPA"]
