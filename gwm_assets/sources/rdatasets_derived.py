"""Series derived from R data sets for the embedded default: aggregates over members, ratios, conversions.

Each function takes an item's raw frame (and a ``where`` naming it for errors) and returns a frame indexed
by observation date, one column per series; its docstring says how the series is derived from the item.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gwm_assets.sources.rdatasets_frames import ItemFormatChanged, dated, documented_calendar, require_columns, yearly

EURO_AREA_GTD = ["Austria", "Belgium", "Croatia", "Cyprus", "Estonia", "Finland", "France", "Germany",
                 "West Germany (FRG)", "Greece", "Ireland", "Italy", "Latvia", "Lithuania", "Luxembourg", "Malta",
                 "Netherlands", "Portugal", "Slovak Republic", "Slovenia", "Spain"]
EURO_AREA_PWT = ["Austria", "Belgium", "Finland", "France", "Germany", "Greece", "Ireland", "Italy", "Netherlands",
                 "Portugal", "Spain"]
EURO_AREA_MV = ["Austria", "Belgium", "Finland", "France", "Germany", "Ireland", "Italy", "Netherlands", "Portugal",
                "Slovakia", "Slovenia", "Spain"]


def us_change(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """Quarter-on-quarter percent changes; consumption and income are annualised to match FRED's SAAR."""
    require_columns(raw, where, ["Quarter", "Consumption", "Income", "Savings"])
    quarters = pd.PeriodIndex(raw["Quarter"].str.replace(" ", "", regex=False), freq="Q").to_timestamp()
    out = dated(raw[["Consumption", "Income", "Savings"]], where, quarters)
    for col in ("Consumption", "Income"):
        out[col] = 100 * ((1 + out[col] / 100) ** 4 - 1)
    return out


def gtd_incidents(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """Attacks per year in China and summed over the euro-area members (today's membership)."""
    require_columns(raw, where, ["country_txt", "iyear", "Freq"])
    china = raw[raw.country_txt == "China"].groupby("iyear").Freq.sum()
    euro = raw[raw.country_txt.isin(EURO_AREA_GTD)].groupby("iyear").Freq.sum()
    frame = pd.DataFrame({"china": china, "euro_area": euro}).sort_index()
    return yearly(frame.reset_index(names="year"), where)[["china", "euro_area"]]


def pwt(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """Penn World Table: US output per hour worked, and euro-area aggregates over the members sampled.

    Derived: ``us_output_per_hour`` = rgdpna / (emp x avh); ``ea_rgdpna`` and ``ea_pop`` sum the members
    (real GDP at constant national prices in 2017 US dollars adds up); ``ea_hc`` is the
    population-weighted human-capital index. A year enters the aggregate only with every member present.
    """
    require_columns(raw, where, ["country", "year", "pop", "hc", "rgdpna", "emp", "avh"])
    us = raw[raw.country == "United States of America"].set_index("year").sort_index()
    ea = raw[raw.country.isin(EURO_AREA_PWT)]
    complete = ea.dropna(subset=["rgdpna", "pop", "hc"]).groupby("year").country.nunique() == len(EURO_AREA_PWT)
    ea = ea[ea.year.isin(complete[complete].index)]
    grouped = ea.groupby("year")
    frame = pd.DataFrame({
        "us_output_per_hour": us.rgdpna / (us.emp * us.avh),
        "us_pop": us["pop"], "us_hc": us.hc,
        "ea_rgdpna": grouped.rgdpna.sum(), "ea_pop": grouped["pop"].sum(),
        "ea_hc": grouped.apply(lambda g: np.average(g.hc, weights=g["pop"]), include_groups=False),
    }).sort_index()
    return yearly(frame.reset_index(names="year"), where).drop(columns="year", errors="ignore")


def mvprod(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """Vehicles produced per year: China, the US, and the euro-area producers summed (years with all of them)."""
    require_columns(raw, where, ["country", "year", "value"])
    wide = raw.pivot_table(index="year", columns="country", values="value", aggfunc="first")
    require_columns(wide, where + " (countries)", ["China", "United States", *EURO_AREA_MV])
    euro = wide[EURO_AREA_MV].sum(axis=1, min_count=len(EURO_AREA_MV))
    frame = pd.DataFrame({"china": wide["China"], "united_states": wide["United States"], "euro_area": euro})
    return yearly(frame.reset_index(names="year"), where).drop(columns="year", errors="ignore")


def china_gdp(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """Realised GDP of China in current US dollars (the item's forecast columns are not read)."""
    require_columns(raw, where, ["country", "year", "gdp"])
    china = raw[(raw.country == "China") & raw.gdp.notna()].sort_values("year")
    return yearly(china, where)[["gdp"]]


def anes_polarization(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """Affective polarisation per ANES wave: mean |Democratic - Republican thermometer| over respondents
    who rate both parties (0-100 scale)."""
    require_columns(raw, where, ["year", "therm_dem", "therm_gop"])
    both = raw.dropna(subset=["therm_dem", "therm_gop"])
    gap = (both.therm_dem - both.therm_gop).abs().groupby(both.year).mean()
    return yearly(gap.rename("affective_gap").to_frame().reset_index(), where)[["affective_gap"]]


def breaches(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """Breaches reported to HHS per month of submission, and people affected (millions)."""
    require_columns(raw, where, ["Breach.Submission.Date", "Individuals.Affected"])
    submitted = pd.to_datetime(raw["Breach.Submission.Date"], errors="coerce")
    if submitted.isna().any():
        row = int(np.flatnonzero(submitted.isna())[0]) + 1
        raise ItemFormatChanged(f"{where}: row {row} has no parseable Breach.Submission.Date")
    month = submitted.dt.to_period("M").dt.to_timestamp()
    grouped = raw.assign(month=month).groupby("month")
    frame = pd.DataFrame({"breaches": grouped.size().astype(float),
                          "people_millions": grouped["Individuals.Affected"].sum() / 1e6})
    # the last month is incomplete (the item was cut mid-month): leave it out rather than under-count it
    frame = frame.iloc[:-1]
    return dated(frame, where, frame.index)


def sea_level(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """CSIRO reconstruction (adjlev) to 2013, NOAA (adjlev_noaa) after; inches converted to millimetres."""
    require_columns(raw, where, ["year", "adjlev", "adjlev_noaa"])
    level = raw.adjlev.fillna(raw.adjlev_noaa) * 25.4
    return yearly(raw.assign(sea_level_mm=level), where)[["sea_level_mm"]]


def odgi(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """Mid-latitude index, NOAA's current (2012) definition."""
    require_columns(raw, where, ["year", "cat", "odgi_new"])
    mid = raw[raw.cat == "Mid-Lat"]
    return yearly(mid, where)[["odgi_new"]]


def min_wage(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """The federal minimum wage in force on the first of each month (set by statute ahead of its date)."""
    require_columns(raw, where, ["date", "wage"])
    frame = dated(raw[["wage"]], where, raw["date"])
    months = pd.date_range(frame.index[0].to_period("M").to_timestamp() + pd.offsets.MonthBegin(1),
                           "2019-12-01", freq="MS")
    in_force = frame.wage.reindex(frame.index.union(months)).ffill().reindex(months)
    return dated(pd.DataFrame({"wage": in_force}), where, months)


def gdp_presidents(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    require_columns(raw, where, ["Year", "battleDeaths", "fedDebt_pGDP", "fedSurplus_pGDP", "fedReceipts"])
    frame = yearly(raw[raw.Year >= 1790], where, "Year")
    frame["fedDeficit_pGDP"] = -frame.fedSurplus_pGDP
    return frame[["battleDeaths", "fedDebt_pGDP", "fedDeficit_pGDP", "fedReceipts"]]


def earnings(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """Hourly and weekly earnings, and a derived unit labour cost: hourly earnings / output per hour."""
    require_columns(raw, where, ["year", "hrwage", "wkearns", "outphr"])
    frame = yearly(raw, where)
    return pd.DataFrame({"hrwage": frame.hrwage, "wkearns": frame.wkearns,
                         "unit_labor_cost": frame.hrwage / frame.outphr}, index=frame.index)


def trade(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """Derived: the goods and services balance (exports - imports, billions of dollars) and trade over GDP (%)."""
    require_columns(raw, where, ["year", "gdpb", "impo", "expo"])
    frame = yearly(raw, where)
    return pd.DataFrame({"trade_balance": frame.expo - frame.impo,
                         "trade_to_gdp": 100 * (frame.expo + frame.impo) / frame.gdpb}, index=frame.index)


def garch_yen(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """Daily yen per dollar from the item's dollars per yen (dy); dates are yymmdd in the 1980s."""
    require_columns(raw, where, ["date", "dy"])
    dates = pd.to_datetime(raw["date"].astype(int).astype(str).str.zfill(6), format="%y%m%d", errors="coerce")
    frame = dated(raw[["dy"]], where, dates)
    return pd.DataFrame({"jpy_per_usd": 1 / frame.dy}, index=frame.index)


def decimal_month(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """wooldridge/volat dates are year.month written as a decimal (1947.01 = January 1947)."""
    require_columns(raw, where, ["date", "divyld"])
    years = np.floor(raw["date"].to_numpy(dtype=float) + 1e-6).astype(int)
    months = np.rint((raw["date"].to_numpy(dtype=float) - years) * 100).astype(int)
    return dated(raw[["divyld"]], where, [pd.Timestamp(int(y), int(m), 1) for y, m in zip(years, months, strict=True)])


def post_activity(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """Per UTC day of the post corpus: how many posts, and the median times they were retweeted."""
    require_columns(raw, where, ["created_at", "retweet_count"])
    stamps = pd.to_datetime(raw["created_at"], errors="coerce", utc=True)
    day = stamps.dt.tz_convert(None).dt.normalize()
    grouped = raw.assign(day=day).dropna(subset=["day"]).groupby("day")
    frame = pd.DataFrame({"posts": grouped.size().astype(float), "median_retweets": grouped.retweet_count.median()})
    return dated(frame, where, frame.index)


def china_income(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    require_columns(raw, where, ["industry"])
    return documented_calendar(raw[["industry"]], where, "1952-01-01", "YS", 37)
