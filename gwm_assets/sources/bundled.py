"""The embedded default: real history shipped inside permissively licensed PyPI packages.

Each item is read at run time from an installed package (or, for the Treasury curve, from the
zipline-reloaded wheel that ``make setup`` downloads without installing) and written into the same
raw tables the live sources fill, keyed by the real FRED series ids and Yahoo tickers. Nothing
extracted is committed to the repository. Every item has a ``provenance`` row: package, version,
item, the origin the package states, and the licence.
"""

from __future__ import annotations

import glob
import gzip
import importlib.metadata
import io
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from gwm_assets.sources import fred, tabular, yahoo
from gwm_assets.warehouse.ledger import Provenance
from gwm_assets.warehouse.raw_store import RawTableSpec

WHEEL_DIR = Path(sys.prefix) / "share" / "gwm-wheels"
TREASURY_TENORS = {"1month": "DGS1MO", "3month": "DGS3MO", "6month": "DGS6MO", "1year": "DGS1", "2year": "DGS2",
                   "3year": "DGS3", "5year": "DGS5", "7year": "DGS7", "10year": "DGS10", "20year": "DGS20",
                   "30year": "DGS30"}


class ItemUnavailable(RuntimeError):
    """The package or file an item needs is not installed here."""


@dataclass(frozen=True)
class BundledItem:
    provenance: Provenance
    raw: RawTableSpec
    load: Callable[[], pa.Table]


def _frame_dates(frame) -> list:
    return [ts.date() for ts in frame.index]


def _fred_rows(series_id: str, dates, values, scale: float = 1.0) -> pa.Table:
    rows = [{"series_id": series_id, "date": d, "realtime_start": None, "realtime_end": None,
             "value": float(v) * scale} for d, v in zip(dates, values, strict=True) if v == v]
    return pa.Table.from_pylist(rows, schema=fred.ARROW_SCHEMA)


def _tabular_rows(dataset: str, frame, columns) -> pa.Table:
    rows = [{"dataset": dataset, "series": c, "date": d, "value": float(v)}
            for c in columns for d, v in zip(_frame_dates(frame), frame[c], strict=True) if v == v]
    return pa.Table.from_pylist(rows, schema=tabular.ARROW_SCHEMA)


def _yahoo_rows(ticker: str, frame, mapping: dict[str, str]) -> pa.Table:
    rows = []
    for day, (_, rec) in zip(_frame_dates(frame), frame.iterrows(), strict=True):
        row = {"ticker": ticker, "date": day}
        row.update({col: (float(rec[src]) if src in rec and rec[src] == rec[src] else None)
                    for col, src in mapping.items()})
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=yahoo.ARROW_SCHEMA)


def _require(module: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        raise ItemUnavailable(f"package providing '{module}' is not installed ({exc})") from exc


# ---- loaders --------------------------------------------------------------------------------------
YAHOO_OHLC = {"open": "Open", "high": "High", "low": "Low", "close": "Close", "adj_close": "Adj Close",
              "volume": "Volume"}


def _arch(name: str):
    return _require(f"arch.data.{name}").load()


def load_arch_index(name: str, ticker: str) -> Callable[[], pa.Table]:
    return lambda: _yahoo_rows(ticker, _arch(name), YAHOO_OHLC)


def load_arch_fred(name: str, columns: dict[str, str]) -> Callable[[], pa.Table]:
    def load() -> pa.Table:
        frame = _arch(name)
        return pa.concat_tables([_fred_rows(sid, _frame_dates(frame), frame[col]) for col, sid in columns.items()])
    return load


def load_arch_crude() -> pa.Table:
    return _tabular_rows("arch.crude", _arch("crude"), ["Brent"])


def load_french() -> pa.Table:
    """Ken French factors as shipped by arch (the YYYYMM column is parsed here: arch's own loader
    mangles it under pandas 3)."""
    import pandas as pd

    module = _require("arch.data.frenchdata")
    with gzip.open(Path(module.__file__).with_name("frenchdata.csv.gz"), "rt") as fh:
        frame = pd.read_csv(fh)
    frame.index = pd.to_datetime(frame.pop("Date").astype(str), format="%Y%m")
    return _tabular_rows("arch.frenchdata", frame, ["Mkt-RF", "SMB", "HML", "RF"])


def load_momentum() -> pa.Table:
    import pandas as pd

    data = _require("linearmodels.datasets.french").load()
    data.index = pd.to_datetime(data["dates"])
    return _tabular_rows("linearmodels.french", data, ["Mom"])  # fractions: the catalog scales to percent


def load_macrodata() -> pa.Table:
    import pandas as pd

    frame = _require("statsmodels.api").datasets.macrodata.load_pandas().data
    dates = [pd.Timestamp(int(y), int(q) * 3 - 2, 1).date() for y, q in zip(frame.year, frame.quarter, strict=True)]
    ids = {"realgdp": "GDPC1", "realcons": "PCECC96", "realinv": "GPDIC1", "realgovt": "GCEC1"}
    return pa.concat_tables([_fred_rows(sid, dates, frame[col]) for col, sid in ids.items()])


def load_co2() -> pa.Table:
    frame = _require("statsmodels.api").datasets.co2.load_pandas().data
    return _tabular_rows("statsmodels.co2", frame, ["co2"])


def load_bokeh_stocks() -> pa.Table:
    import pandas as pd

    data = _require("bokeh_sampledata.stocks").data
    tables = []
    for ticker, frame in data.groupby("ticker", sort=True):
        frame = frame.set_index(pd.to_datetime(frame["date"]))
        mapping = {c: c for c in ("open", "high", "low", "close", "adj_close", "volume")}
        tables.append(_yahoo_rows(str(ticker), frame, mapping))
    return pa.concat_tables(tables)


def load_unemployment1948() -> pa.Table:
    import pandas as pd

    wide = _require("bokeh_sampledata.unemployment1948").data
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    dates, values = [], []
    for _, rec in wide.iterrows():
        for i, month in enumerate(months):
            dates.append(pd.Timestamp(int(rec["Year"]), i + 1, 1).date())
            values.append(rec[month])
    return _fred_rows("UNRATE", dates, values)


def load_us_employment() -> pa.Table:
    import pandas as pd

    frame = _require("vega_datasets").local_data("us-employment")
    dates = [pd.Timestamp(m).date() for m in frame["month"]]
    return _fred_rows("PAYEMS", dates, frame["nonfarm"])


def treasury_wheel() -> Path:
    found = sorted(glob.glob(str(WHEEL_DIR / "zipline_reloaded-*.whl")))
    if not found:
        raise ItemUnavailable(f"no zipline-reloaded wheel in {WHEEL_DIR}. Fix: run `make setup` (it downloads "
                              "the wheel, without installing it)")
    return Path(found[-1])


def load_treasury_curve() -> pa.Table:
    import pandas as pd

    with zipfile.ZipFile(treasury_wheel()) as wheel:
        text = wheel.read("zipline/resources/market_data/treasury_curves.csv")
    frame = pd.read_csv(io.BytesIO(text), index_col=0)
    frame.index = pd.to_datetime(frame.index, utc=True).tz_localize(None)
    dates = _frame_dates(frame)
    # the wheel stores decimals (0.0783); FRED's DGS series are in percent (7.83)
    return pa.concat_tables([_fred_rows(sid, dates, frame[col], scale=100.0) for col, sid in TREASURY_TENORS.items()])


# ---- the catalog of items ---------------------------------------------------------------------------
def _item(pid: str, package: str, item: str, origin: str, licence: str, raw: RawTableSpec, load) -> BundledItem:
    return BundledItem(Provenance(provenance_id=f"bundled:{pid}", source="bundled", item=item, stated_origin=origin,
                                  licence=licence, package=package), raw, load)


NO_ORIGIN = "none stated by the package (Yahoo-format columns)"
ITEMS: tuple[BundledItem, ...] = (
    _item("arch.sp500", "arch", "arch.data.sp500 -> raw_yahoo ^GSPC", NO_ORIGIN, "NCSA (package)", yahoo.RAW,
          load_arch_index("sp500", "^GSPC")),
    _item("arch.nasdaq", "arch", "arch.data.nasdaq -> raw_yahoo ^IXIC", NO_ORIGIN, "NCSA (package)", yahoo.RAW,
          load_arch_index("nasdaq", "^IXIC")),
    _item("arch.vix", "arch", "arch.data.vix -> raw_fred VIXCLS", "none stated by the package (CBOE VIX close)",
          "NCSA (package)", fred.RAW, load_arch_fred("vix", {"vix": "VIXCLS"})),
    _item("arch.wti", "arch", "arch.data.wti -> raw_fred DCOILWTICO", "From the FRED database (DCOILWTICO)",
          "NCSA (package)", fred.RAW, load_arch_fred("wti", {"DCOILWTICO": "DCOILWTICO"})),
    _item("arch.default", "arch", "arch.data.default -> raw_fred AAA, BAA", "none stated (Moody's Aaa/Baa yields)",
          "NCSA (package)", fred.RAW, load_arch_fred("default", {"AAA": "AAA", "BAA": "BAA"})),
    _item("arch.core_cpi", "arch", "arch.data.core_cpi -> raw_fred CPILFESL", "From the FRED database (CPILFESL)",
          "NCSA (package)", fred.RAW, load_arch_fred("core_cpi", {"CPILFESL": "CPILFESL"})),
    _item("arch.crude", "arch", "arch.data.crude (Brent, monthly) -> raw_tabular", "none stated by the package",
          "NCSA (package)", tabular.RAW, load_arch_crude),
    _item("arch.frenchdata", "arch", "arch.data.frenchdata -> raw_tabular", "Kenneth R. French data library",
          "NCSA (package)", tabular.RAW, load_french),
    _item("linearmodels.french", "linearmodels", "linearmodels.datasets.french (Mom) -> raw_tabular",
          "Kenneth R. French data library", "NCSA (package)", tabular.RAW, load_momentum),
    _item("statsmodels.macrodata", "statsmodels", "statsmodels macrodata -> raw_fred GDPC1, PCECC96, GPDIC1, GCEC1",
          "FRED and BLS, accessed 2009-12-15 (package docs)", "public domain (package docs); BSD-3 package",
          fred.RAW, load_macrodata),
    _item("statsmodels.co2", "statsmodels", "statsmodels co2 (Mauna Loa weekly) -> raw_tabular",
          "NOAA/Scripps Mauna Loa CO2 record (package docs)", "public domain (package docs); BSD-3 package",
          tabular.RAW, load_co2),
    _item("bokeh.stocks", "bokeh-sampledata", "bokeh_sampledata.stocks -> raw_yahoo AAPL, FB, GOOG, IBM, MSFT",
          "Quandl WIKI prices (archived copy), per the wheel's licenses/datasets.json", "Public domain",
          yahoo.RAW, load_bokeh_stocks),
    _item("bokeh.unemployment1948", "bokeh-sampledata", "bokeh_sampledata.unemployment1948 -> raw_fred UNRATE",
          "US Bureau of Labor Statistics", "Public domain", fred.RAW, load_unemployment1948),
    _item("vega.us_employment", "vega_datasets", "vega_datasets us-employment (nonfarm) -> raw_fred PAYEMS",
          "US Bureau of Labor Statistics (CES)", "Public domain (BLS); MIT package", fred.RAW, load_us_employment),
    _item("zipline.treasury_curves", "zipline-reloaded", "treasury_curves.csv inside the wheel -> raw_fred DGS*",
          "US Treasury daily par yield curve", "Public domain (US government); Apache-2.0 package", fred.RAW,
          load_treasury_curve),
)


def package_version(package: str) -> str | None:
    if package == "zipline-reloaded":
        try:
            return treasury_wheel().name.split("-")[1]
        except ItemUnavailable:
            return None
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
