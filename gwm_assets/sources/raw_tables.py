"""The raw tables the sources fill: their columns and keys, what names a series, and its watermark.

One place for the shape of every ``raw_<source>`` table, read by the refresh (upserts, watermarks), the
freshness check and the observations build (which rows of a raw table belong to which series).
"""

from __future__ import annotations

from gwm_assets.sources import earnings, fred, news, pmi, tabular, yahoo
from gwm_assets.warehouse.raw_store import RawTableSpec

RAW_SPECS: dict[str, RawTableSpec] = {
    "fred": fred.RAW,
    "yahoo": yahoo.RAW,
    "tabular": tabular.RAW,
    "pmi": RawTableSpec(pmi.RAW_TABLE, pmi.RAW_COLUMNS, pmi.KEY_COLUMNS, pmi.VALUE_COLUMNS),
    "earnings": RawTableSpec(earnings.RAW_TABLE, earnings.RAW_COLUMNS, earnings.KEY_COLUMNS, earnings.VALUE_COLUMNS),
    "news": RawTableSpec(news.RAW_TABLE, news.RAW_COLUMNS, news.KEY_COLUMNS, news.VALUE_COLUMNS,
                         news.DERIVED_COLUMNS),
}
# (column naming the series, column whose maximum is the series' watermark)
WATERMARKS = {"fred": ("series_id", "date"), "yahoo": ("ticker", "date"), "pmi": ("series_code", "period"),
              "earnings": ("ticker", "filed"), "news": ("feed", "published_at"), "tabular": ("dataset", "date")}
# per raw table: (source name, SQL naming a row's series, its date column); news_daily has no change stamps
SERIES = {"raw_fred": ("fred", "series_id", "date"), "raw_yahoo": ("yahoo", "ticker", "date"),
          "raw_pmi": ("pmi", "series_code", "period"),
          "raw_earnings": ("earnings", "ticker || ':' || metric", "period_end"),
          "raw_tabular": ("tabular", "dataset || ':' || series", "date"), "news_daily": ("news", "stream", "day")}
