"""Quarantine for observations: candidate rows failing a row-level expectation never get published.

The observations build stages its candidate rows (temp table ``obs_staged``); this module evaluates
the row-level expectations of the observations suite on them in SQL (the same predicates the
Great Expectations check applies to the published table), moves failing rows to ``quarantine``
with the check, a readable reason, the run id and the original values, and releases quarantine
entries whose rows now pass. Both steps are idempotent: an entry still open for the same row and
values is not added again, and a released entry is never released twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path

import duckdb

from gwm_assets.validation.suite import Suite, load_suite

SUITE_PATH = Path(__file__).parent / "expectations" / "observations.yaml"
CHECK_PREFIX = "observations."


@cache
def observations_suite() -> Suite:
    return load_suite(SUITE_PATH)


@dataclass(frozen=True)
class QuarantineOutcome:
    rejected: int = 0  # candidate rows withheld from observations in this build
    newly_quarantined: int = 0  # of which new to quarantine (the rest were already held)
    released: int = 0  # quarantine entries whose rows now pass
    by_check: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # check -> [(series, rows)]


def _same_row(q: str, r: str) -> str:
    return (f"{q}.source = {r}.source AND {q}.source_key = {r}.source_key AND {q}.field_path = {r}.field_path "
            f"AND {q}.ts = CAST({r}.ts AS VARCHAR) AND {q}.check_name = '{CHECK_PREFIX}' || {r}.check_name")


def in_changed_series(alias: str, ts: str) -> str:
    """SQL: the row is in a series an incremental build recomputes (temp table ``obs_changed``)."""
    return (f"EXISTS (SELECT 1 FROM obs_changed c WHERE c.ch_source = {alias}.source "
            f"AND c.ch_key = {alias}.source_key AND {ts} >= c.ch_since)")


def quarantine_candidates(conn: duckdb.DuckDBPyConnection, now: datetime, run_id: str,
                          incremental: bool = False) -> QuarantineOutcome:
    """Withhold failing rows of ``obs_staged`` and record them; call inside the build's transaction.

    ``incremental``: only rows of the series in ``obs_changed``, from their first changed date, are
    being recomputed; rejects and releases are limited to those.
    """
    suite = observations_suite()
    checks = suite.row_level
    passes = [e.sql_pass() for e in checks]
    check_case = "CASE " + " ".join(f"WHEN NOT {p} THEN '{e.name}'" for e, p in zip(checks, passes, strict=True))
    reason_case = "CASE " + " ".join(f"WHEN NOT {p} THEN {e.reason}" for e, p in zip(checks, passes, strict=True))
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE obs_rejects AS
        SELECT field_path, ts, source, source_key, {check_case} END AS check_name, {reason_case} END AS reason,
               to_json(struct_pack(value := value, revised_value := revised_value,
                                   available_at := available_at)) AS raw
        FROM ({suite.frame_sql(now, rows="obs_staged")}) f
        WHERE NOT ({' AND '.join(passes)})""")
    if incremental:  # context rows before a series' first change are not being republished
        conn.execute(f"DELETE FROM obs_rejects o WHERE NOT {in_changed_series('o', 'o.ts')}")
    rejected = conn.execute("SELECT count(*) FROM obs_rejects").fetchone()[0]
    new = conn.execute(f"""
        INSERT INTO quarantine (quarantined_at, run_id, source, source_key, ts, check_name, reason, raw, field_path)
        SELECT ?, ?, r.source, r.source_key, CAST(r.ts AS VARCHAR), '{CHECK_PREFIX}' || r.check_name, r.reason,
               r.raw, r.field_path
        FROM obs_rejects r
        WHERE NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.released_at IS NULL AND {_same_row('q', 'r')}
                          AND q.raw = r.raw)""", [now, run_id]).fetchone()[0]
    quarantine_scope = in_changed_series("q", "TRY_CAST(q.ts AS DATE)") if incremental else "true"
    released = conn.execute(f"""
        UPDATE quarantine q SET released_at = ?, released_run_id = ?
        WHERE q.released_at IS NULL AND q.check_name LIKE '{CHECK_PREFIX}%' AND {quarantine_scope}
          AND NOT EXISTS (SELECT 1 FROM obs_rejects r WHERE {_same_row('q', 'r')} AND q.raw = r.raw)""",
                            [now, run_id]).fetchone()[0]
    conn.execute("DELETE FROM obs_staged s USING obs_rejects r "
                 "WHERE s.field_path = r.field_path AND s.ts = r.ts AND s.source = r.source")
    by_check: dict[str, list[tuple[str, int]]] = {}
    for check, series, n in conn.execute("""SELECT check_name, field_path || ' <- ' || source || ':' || source_key,
                                                   count(*) FROM obs_rejects GROUP BY ALL ORDER BY 1, 3 DESC, 2"""
                                         ).fetchall():
        by_check.setdefault(check, []).append((series, n))
    conn.execute("DROP TABLE obs_rejects")
    return QuarantineOutcome(rejected=rejected, newly_quarantined=new, released=released, by_check=by_check)
