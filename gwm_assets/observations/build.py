"""Build ``observations``: every mapped raw series as one long table keyed by world field path.

Point in time: ``value`` is what was first published for a date and ``available_at`` when it was
published (the FRED vintage date, the PMI release time, the SEC filing date; else the date plus the
series' release lag). ``revised_value`` is the latest value known for that date. Catalog transforms
(pct_yoy, diff, ...) run on each series' own dates, and a derived value is available only once
every input to it was. The table is updated in place: unchanged rows keep their ``ingested_at``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa

from gwm_assets.observations.quarantine import QuarantineOutcome, in_changed_series, quarantine_candidates
from gwm_assets.sources.catalog import SeriesMapping, catalog_arrow
from gwm_assets.sources.raw_tables import SERIES
from gwm_assets.validation.ranges import ensure_field_ranges
from gwm_assets.warehouse.connection import registered
from gwm_assets.warehouse.ledger import ensure_ledger

OBSERVATIONS_DDL = """
CREATE TABLE IF NOT EXISTS observations (
    field_path    VARCHAR   NOT NULL,
    ts            DATE      NOT NULL,
    available_at  TIMESTAMP NOT NULL,
    value         DOUBLE    NOT NULL,
    revised_value DOUBLE    NOT NULL,
    vector        FLOAT[],
    source        VARCHAR   NOT NULL,
    source_key    VARCHAR   NOT NULL,
    provenance    VARCHAR   NOT NULL,
    ingested_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (field_path, ts, source)
)"""

# One SELECT per raw table: (source, source_key, ts, value, revised_value, known_at, provenance, vector).
# ``{table}`` placeholders are the raw table itself or, in an incremental build, only its changed series.
POINTS = {
    "raw_fred": """
        SELECT 'fred' AS source, series_id AS source_key, date AS ts,
               coalesce(arg_min(value, realtime_start) FILTER (realtime_start IS NOT NULL),
                        any_value(value) FILTER (realtime_start IS NULL)) AS value,
               coalesce(arg_max(value, realtime_start) FILTER (realtime_start IS NOT NULL),
                        any_value(value) FILTER (realtime_start IS NULL)) AS revised_value,
               CAST(min(realtime_start) AS TIMESTAMP) AS known_at,
               coalesce(arg_min(provenance, realtime_start) FILTER (realtime_start IS NOT NULL),
                        any_value(provenance)) AS provenance,
               CAST(NULL AS FLOAT[]) AS vector
        FROM {raw_fred} raw_fred WHERE value IS NOT NULL GROUP BY series_id, date""",
    "raw_yahoo": """
        SELECT 'yahoo', y.ticker, y.date,
               CASE m.column WHEN 'adj_close' THEN y.adj_close ELSE y.close END,
               CASE m.column WHEN 'adj_close' THEN y.adj_close ELSE y.close END,
               CAST(NULL AS TIMESTAMP), y.provenance, CAST(NULL AS FLOAT[])
        FROM {raw_yahoo} y JOIN source_series m ON m.source = 'yahoo' AND m.key = y.ticker""",
    "raw_pmi": """
        SELECT 'pmi', series_code, period, arg_min(value, ingested_at), arg_max(value, ingested_at),
               min(released_at), arg_min(provenance, ingested_at), CAST(NULL AS FLOAT[])
        FROM {raw_pmi} raw_pmi WHERE value IS NOT NULL GROUP BY series_code, period""",
    "raw_earnings": """
        SELECT 'earnings', ticker || ':' || metric, period_end, arg_min(value, filed), arg_max(value, filed),
               CAST(min(filed) AS TIMESTAMP), arg_min(provenance, filed), CAST(NULL AS FLOAT[])
        FROM {raw_earnings} raw_earnings WHERE value IS NOT NULL GROUP BY ticker, metric, period_end""",
    "raw_tabular": """
        SELECT 'tabular', dataset || ':' || series, date, value, value, CAST(NULL AS TIMESTAMP), provenance,
               CAST(NULL AS FLOAT[])
        FROM {raw_tabular} raw_tabular WHERE value IS NOT NULL""",
    "news_daily": """
        SELECT 'news', stream, day, CAST(n_headlines AS DOUBLE), CAST(n_headlines AS DOUBLE),
               CAST(last_published_at AS TIMESTAMP), provenance, CAST(mean_embedding AS FLOAT[])
        FROM {news_daily} news_daily""",
}

TRANSFORMED_TEMPLATE = """
CREATE OR REPLACE TEMP TABLE obs_staged AS
WITH mapped AS (
    SELECT m.field AS field_path, m.transform, p.*,
           coalesce(p.known_at, CAST(p.ts AS TIMESTAMP) + to_days(CAST(m.release_lag_days AS INTEGER))) AS avail,
           CASE m.frequency WHEN 'quarterly' THEN 4 WHEN 'monthly' THEN 12 WHEN 'weekly' THEN 52
                            WHEN 'annual' THEN 1 ELSE 252 END AS per_year
    FROM obs_points p JOIN source_series m ON m.source = p.source AND m.key = p.source_key
),
ordered AS (
    SELECT *, lag(value) OVER w AS prev_value, lag(revised_value) OVER w AS prev_revised,
           lag(avail) OVER w AS prev_avail
    FROM mapped WINDOW w AS (PARTITION BY source, source_key ORDER BY ts)
),
yearly AS (
    -- pct_yoy compares with the same date a year earlier (month and quarter starts line up exactly)
    SELECT o.*, y.value AS year_value, y.revised_value AS year_revised, y.avail AS year_avail
    FROM ordered o LEFT JOIN mapped y
      ON o.source = y.source AND o.source_key = y.source_key AND y.ts = CAST(o.ts - INTERVAL 1 YEAR AS DATE)
),
computed AS (
    SELECT field_path, ts, source, source_key, provenance, vector,
      {value_case} AS value,
      {revised_case} AS revised_value,
      CASE
        WHEN transform = 'level' OR transform LIKE 'scale:%' THEN avail
        WHEN transform = 'pct_yoy' THEN greatest(avail, year_avail)
        ELSE greatest(avail, prev_avail)
      END AS available_at,
      transform
    FROM yearly
)
SELECT field_path, ts, available_at, value, revised_value, vector, source, source_key, provenance
FROM computed
WHERE value IS NOT NULL AND revised_value IS NOT NULL
  AND available_at IS NOT NULL
"""


def _transform_case(current: str, previous: str, year_ago: str) -> str:
    """SQL computing a catalog transform of column ``current`` (first-release and revised values alike)."""
    return f"""CASE
        WHEN transform = 'level' THEN {current}
        WHEN transform LIKE 'scale:%' THEN {current} * CAST(split_part(transform, ':', 2) AS DOUBLE)
        WHEN transform = 'diff' THEN {current} - {previous}
        WHEN transform = 'pct_change' THEN 100 * ({current} / {previous} - 1)
        WHEN transform = 'log_return' THEN CASE WHEN {current} / {previous} > 0 THEN ln({current} / {previous})
                                                WHEN {current} / {previous} <= 0 THEN CAST('NaN' AS DOUBLE)
                                           END  -- a non-positive ratio is quarantined as NaN, never a crash
        WHEN transform = 'pct_annualized' THEN 100 * (pow({current} / {previous}, per_year) - 1)
        WHEN transform = 'pct_yoy' THEN 100 * ({current} / {year_ago} - 1)
      END"""


TRANSFORMED = TRANSFORMED_TEMPLATE.format(value_case=_transform_case("value", "prev_value", "year_value"),
                                          revised_case=_transform_case("revised_value", "prev_revised",
                                                                       "year_revised"))


@dataclass(frozen=True)
class ObservationsLoad:
    rows: int
    inserted: int
    updated: int
    deleted: int
    fields: int
    recomputed_series: int | None = None  # None: every series was recomputed
    quarantine: QuarantineOutcome = QuarantineOutcome()


# a pct_yoy series re-reads this much history before its first changed date (a year and a margin)
YEAR_CONTEXT_DAYS = 372
# an incremental build looks this far back for a changed series' previous point before searching all of it
PREV_WINDOW_DAYS = 400

STATE_DDL = """CREATE TABLE IF NOT EXISTS observations_state (
    raw_table VARCHAR PRIMARY KEY, watermark TIMESTAMP, catalog_hash VARCHAR NOT NULL)"""


def _existing_tables(conn: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def write_source_series(conn: duckdb.DuckDBPyConnection, mappings: list[SeriesMapping]) -> int:
    table = catalog_arrow(mappings)
    with registered(conn, "incoming_catalog", table):
        conn.execute("CREATE OR REPLACE TABLE source_series AS SELECT * FROM incoming_catalog")
    return table.num_rows


def _catalog_hash(conn: duckdb.DuckDBPyConnection) -> str:
    return conn.execute("SELECT coalesce(md5(string_agg(CAST(c AS VARCHAR), '|' ORDER BY CAST(c AS VARCHAR))), '') "
                        "FROM source_series c").fetchone()[0]


def _watermarks(conn: duckdb.DuckDBPyConnection, present: set[str]) -> dict[str, datetime | None]:
    """The latest change stamp of each raw table (None for tables without stamps)."""
    return {t: (conn.execute(f"SELECT max(updated_at) FROM {t}").fetchone()[0] if t != "news_daily" else None)
            for t in SERIES if t in present}


def _changed_series(conn: duckdb.DuckDBPyConnection, present: set[str], catalog: str) -> bool:
    """Fill temp table ``obs_changed`` with the series to recompute; False means recompute everything.

    Everything is recomputed on a first build or when the catalog changed; otherwise each series
    with raw rows written since the last build, from the earliest date written (``since``) on (plus
    the small, wholly rebuilt ``news_daily``).
    """
    stored = dict(conn.execute("SELECT raw_table, watermark FROM observations_state WHERE catalog_hash = ?",
                               [catalog]).fetchall())
    tables = [t for t in SERIES if t in present]
    if not tables or any(t not in stored for t in tables):
        return False
    parts, params = [], []
    for t in tables:
        source, key, ts = SERIES[t]
        since = "" if stored[t] is None else " WHERE updated_at > ?"
        params += [] if stored[t] is None else [stored[t]]
        # from: the history the transforms read, i.e. the previous point, or a year back for pct_yoy.
        # The previous point is looked for in the PREV_WINDOW_DAYS before the first change (a range the
        # scan of the raw table filters on), and in the whole history only for series with none there.
        rows = f"(SELECT {key} AS ch_key, {ts} AS ts FROM {t})"
        parts.append(f"""
            SELECT '{source}' AS ch_source, ch_key, ch_since,
                   least(coalesce(ch_prev, ch_since),
                         CASE WHEN ch_key IN (SELECT key FROM source_series WHERE source = '{source}'
                                              AND transform = 'pct_yoy')
                              THEN CAST(ch_since - INTERVAL {YEAR_CONTEXT_DAYS} DAY AS DATE) END) AS ch_from
            FROM (
              WITH ch AS MATERIALIZED (SELECT {key} AS ch_key, min({ts}) AS ch_since,
                                              CAST(min({ts}) - INTERVAL {PREV_WINDOW_DAYS} DAY AS DATE) AS ch_near
                                       FROM {t}{since} GROUP BY 1),
              near AS MATERIALIZED (
                SELECT ch.ch_key, ch.ch_since, max(r.ts) AS ch_prev
                FROM ch LEFT JOIN {rows} r ON r.ch_key = ch.ch_key AND r.ts < ch.ch_since AND r.ts >= ch.ch_near
                GROUP BY ch.ch_key, ch.ch_since)
              SELECT * FROM near WHERE ch_prev IS NOT NULL
              UNION ALL
              SELECT n.ch_key, n.ch_since, max(r.ts) AS ch_prev
              FROM (SELECT * FROM near WHERE ch_prev IS NULL) n
              LEFT JOIN {rows} r ON r.ch_key = n.ch_key AND r.ts < n.ch_since
              GROUP BY n.ch_key, n.ch_since)""")
    conn.execute("CREATE OR REPLACE TEMP TABLE obs_changed AS " + " UNION ALL ".join(parts), params)
    return True


def build_observations(conn: duckdb.DuckDBPyConnection, now: datetime, full: bool = False,
                       run_id: str = "manual") -> ObservationsLoad:
    """Recompute observations of changed series from the raw tables and apply the difference.

    Call inside a transaction, after ``source_series`` is written. Only series with raw rows written
    since the last build are recomputed, from their earliest written date on (transforms read up to
    the history they need); ``full`` (or a changed catalog, or a first build) recomputes every
    series. Candidate rows failing a row-level expectation go to ``quarantine`` instead (see
    :mod:`gwm_assets.observations.quarantine`).
    """
    conn.execute(OBSERVATIONS_DDL)
    conn.execute(STATE_DDL)
    ensure_ledger(conn)
    present = _existing_tables(conn)
    catalog = _catalog_hash(conn)
    marks = _watermarks(conn, present)
    incremental = not full and _changed_series(conn, present, catalog)
    if incremental:
        sources = {t: f"(SELECT r.* FROM {t} r JOIN obs_changed c ON c.ch_source = '{src}' AND c.ch_key = {key} "
                      f"AND {ts} >= c.ch_from)" for t, (src, key, ts) in SERIES.items()}
        # rows of a changed series from its first changed date on (a join: faster than EXISTS here)
        using = "USING obs_changed c"
        scope = "c.ch_source = o.source AND c.ch_key = o.source_key AND o.ts >= c.ch_since"
        recomputed = conn.execute("SELECT count(*) FROM obs_changed").fetchone()[0]
    else:
        sources, using, scope = {t: t for t in SERIES}, "", "true"
        recomputed = None
    columns = "source, source_key, ts, value, revised_value, known_at, provenance, vector"
    selects = [f"SELECT * FROM ({sql.format(**sources)}) AS points_{table}({columns})"
               for table, sql in POINTS.items() if table in present]
    if not selects:
        selects = [f"SELECT * FROM (SELECT NULL::VARCHAR, NULL::VARCHAR, NULL::DATE, NULL::DOUBLE, NULL::DOUBLE, "
                   f"NULL::TIMESTAMP, NULL::VARCHAR, NULL::FLOAT[]) AS empty({columns}) WHERE false"]
    conn.execute("CREATE OR REPLACE TEMP TABLE obs_points AS " + " UNION ALL ".join(selects))
    conn.execute(TRANSFORMED)
    ensure_field_ranges(conn)
    quarantined = quarantine_candidates(conn, now, run_id, incremental)
    if incremental:  # the context rows before each series' first change only fed lags and year-ago values
        conn.execute(f"DELETE FROM obs_staged o WHERE NOT {in_changed_series('o', 'o.ts')}")
    key = "o.field_path = s.field_path AND o.ts = s.ts AND o.source = s.source"
    changed = ("o.available_at IS DISTINCT FROM s.available_at OR o.value IS DISTINCT FROM s.value OR "
               "o.revised_value IS DISTINCT FROM s.revised_value OR o.vector IS DISTINCT FROM s.vector OR "
               "o.source_key IS DISTINCT FROM s.source_key OR o.provenance IS DISTINCT FROM s.provenance")
    deleted = conn.execute(f"DELETE FROM observations o {using} WHERE {scope} AND "
                           f"NOT EXISTS (SELECT 1 FROM obs_staged s WHERE {key})").fetchone()[0]
    updated = conn.execute(f"""
        UPDATE observations o SET available_at = s.available_at, value = s.value, revised_value = s.revised_value,
               vector = s.vector, source_key = s.source_key, provenance = s.provenance
        FROM obs_staged s WHERE {key} AND ({changed})""").fetchone()[0]
    # new keys. Incremental: an anti join spelled as a left join, so that DuckDB builds on the few staged
    # rows and prunes the observations scan by their range (NOT EXISTS compares with IS NOT DISTINCT FROM,
    # which probes every stored row: a third of a 10 M-row refresh); the keys are NOT NULL, so both agree
    new_keys = (f"obs_staged s LEFT JOIN observations o ON {key} WHERE o.field_path IS NULL" if incremental
                else f"obs_staged s WHERE NOT EXISTS (SELECT 1 FROM observations o WHERE {key})")
    inserted = conn.execute(f"INSERT INTO observations SELECT s.*, ? FROM {new_keys}", [now]).fetchone()[0]
    rows, fields = conn.execute("SELECT count(*), count(DISTINCT field_path) FROM observations").fetchone()
    conn.execute("DELETE FROM observations_state")
    conn.executemany("INSERT INTO observations_state VALUES (?, ?, ?)",
                     [[t, mark, catalog] for t, mark in marks.items()])
    for temp in ("obs_staged", "obs_points", "obs_changed"):
        conn.execute(f"DROP TABLE IF EXISTS {temp}")
    return ObservationsLoad(rows=rows, inserted=inserted, updated=updated, deleted=deleted, fields=fields,
                            recomputed_series=recomputed, quarantine=quarantined)


def observations_by_field(conn: duckdb.DuckDBPyConnection) -> pa.Table:
    return conn.sql("""SELECT field_path, source, count(*) AS n, min(ts) AS first_ts, max(ts) AS last_ts
                       FROM observations GROUP BY ALL ORDER BY field_path, source""").to_arrow_table()
