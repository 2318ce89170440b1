"""The coverage plan: for every leaf field, which sources are planned and whether a user can fill it.

``fillable`` is one of

* ``offline``: the embedded default (or your own tabular files) has rows for it now; a live refresh may
  add newer ones;
* ``live``: only a live source is mapped; ``live_needs`` says what it takes (a key, ``GWM_LIVE=1``);
* ``unobservable``: no public series can fill it by nature (``unobservable.yaml`` says why); the model
  infers it;
* ``unplanned``: observable in principle, but nothing is mapped yet (``why`` says what is missing).

Data wins over rules: a field with rows or a live mapping is never ``unobservable``. The plan reads the
``source_series`` table (the catalog plus your tabular mapping files) and the ``observations`` table, so
``offline`` means rows that are really there, not what a package promised.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import yaml

from gwm_assets.warehouse.connection import registered
from gwm_model.schema import FieldSpec, WorldSchema

RULES_PATH = Path(__file__).with_name("unobservable.yaml")
FILLABLE = ("offline", "live", "unobservable", "unplanned")
LIVE_SOURCES = ("fred", "yahoo", "pmi", "earnings", "news")
# What a live refresh of each source needs besides the network (see SourceSettings.offline_reason).
LIVE_NEEDS = {"fred": "FRED_API_KEY", "yahoo": "GWM_LIVE=1", "pmi": "GWM_LIVE=1", "news": "GWM_LIVE=1",
              "earnings": "GWM_LIVE=1 and SEC_USER_AGENT"}
COLUMNS = {"field_path": pa.string(), "layer": pa.string(), "field_group": pa.string(), "unit": pa.string(),
           "period": pa.string(), "planned_sources": pa.list_(pa.string()), "offline_sources": pa.list_(pa.string()),
           "live_sources": pa.list_(pa.string()), "live_needs": pa.list_(pa.string()), "fillable": pa.string(),
           "why": pa.string(), "n_obs": pa.int64(), "last_ts": pa.date32()}


class PlanRuleError(ValueError):
    """``unobservable.yaml`` is malformed; the message names the file, the rule and the fix."""


@dataclass(frozen=True)
class Rule:
    why: str
    unit: str | None = None
    paths: tuple[str, ...] = ()

    def matches(self, spec: FieldSpec) -> bool:
        if self.unit is not None and spec.unit != self.unit:
            return False
        return not self.paths or any(fnmatch.fnmatchcase(spec.path, p) for p in self.paths)


def load_rules(path: Path = RULES_PATH, units: set[str] | None = None) -> list[Rule]:
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    rules = []
    for i, raw in enumerate(doc.get("rules") or [], start=1):
        where = f"{path}: rule {i}"
        if not isinstance(raw, dict) or set(raw) - {"why", "unit", "path"} or not raw.get("why"):
            raise PlanRuleError(f"{where}: expected {{why: ..., unit: ..., path: [...]}} with a reason, got {raw!r}. "
                                "Fix: give each rule a 'why' and a 'unit' and/or 'path'")
        if "unit" not in raw and "path" not in raw:
            raise PlanRuleError(f"{where}: matches every field. Fix: add a 'unit' or a 'path'")
        if units is not None and raw.get("unit") is not None and raw["unit"] not in units:
            raise PlanRuleError(f"{where}: unknown unit {raw['unit']!r}. Fix: use a unit of the schema")
        paths = raw.get("path") or []
        rules.append(Rule(why=str(raw["why"]), unit=raw.get("unit"),
                          paths=tuple([paths] if isinstance(paths, str) else paths)))
    return rules


def unplanned_reason(spec: FieldSpec) -> str:
    if spec.unit in ("score", "probability"):
        return "a composite judgement with no free published series: a text- or survey-derived index would fill it"
    if spec.unit == "embedding":
        return "an event embedding: needs a dated text stream of these events, and none is mapped"
    if spec.unit == "category":
        return "a categorical state with no public dating mapped"
    return ("no free public series is mapped: the published measures are paid vendor data, irregular, "
            "or not in the catalog yet")


def plan_rows(schema: WorldSchema, planned: list[tuple[str, str, str]], offline: set[tuple[str, str]],
              observed: dict[str, tuple[int, object]], rules: list[Rule]) -> list[dict]:
    """One row per leaf field. ``planned``: (source, key, field); ``offline``: (source, key) with rows that
    did not come from a live fetch; ``observed``: field -> (observation count, last date)."""
    by_field: dict[str, list[tuple[str, str]]] = {}
    for source, key, field in planned:
        by_field.setdefault(field, []).append((source, key))
    rows = []
    for spec in schema.leaves:
        sources = sorted(by_field.get(spec.path, []))
        offline_src = [f"{s}:{k}" for s, k in sources if (s, k) in offline]
        live_src = [f"{s}:{k}" for s, k in sources if s in LIVE_SOURCES and not k.startswith("corpus:")]
        needs = sorted({LIVE_NEEDS[s.split(":", 1)[0]] for s in live_src})
        n_obs, last = observed.get(spec.path, (0, None))
        if offline_src:
            fillable = "offline"
            why = (f"the warehouse holds {n_obs} observations from data shipped or supplied offline"
                   + (f"; a live refresh adds newer ones with {' / '.join(needs)}" if needs else ""))
        elif live_src:
            fillable, why = "live", f"only live sources are mapped: refresh with {' / '.join(needs)} and network"
        elif (rule := next((r for r in rules if r.matches(spec)), None)) is not None:
            fillable, why = "unobservable", rule.why
        elif sources:
            fillable = "unplanned"
            why = (f"mapped to {', '.join(f'{s}:{k}' for s, k in sources)}, but no rows loaded here "
                   "(a package of the embedded default missing?)")
        else:
            fillable, why = "unplanned", unplanned_reason(spec)
        rows.append({"field_path": spec.path, "layer": spec.layer, "field_group": ".".join(spec.path.split(".")[:2]),
                     "unit": spec.unit, "period": spec.period, "planned_sources": [f"{s}:{k}" for s, k in sources],
                     "offline_sources": offline_src, "live_sources": live_src, "live_needs": needs,
                     "fillable": fillable, "why": why, "n_obs": n_obs, "last_ts": last})
    return rows


def write_coverage_plan(conn: duckdb.DuckDBPyConnection, schema: WorldSchema,
                        rules: list[Rule] | None = None) -> dict[str, int]:
    """Replace table ``coverage_plan`` (call inside a transaction); returns the count per ``fillable``."""
    rules = load_rules(units=set(schema.units)) if rules is None else rules
    planned = [tuple(r) for r in conn.execute("SELECT source, key, field FROM source_series").fetchall()]
    offline = {tuple(r) for r in conn.execute(
        "SELECT DISTINCT source, source_key FROM observations WHERE provenance NOT LIKE 'live:%'").fetchall()}
    observed = {r[0]: (r[1], r[2]) for r in conn.execute(
        "SELECT field_path, count(*), max(ts)::DATE FROM observations GROUP BY field_path").fetchall()}
    rows = plan_rows(schema, planned, offline, observed, rules)
    with registered(conn, "incoming_plan", pa.Table.from_pylist(rows, schema=pa.schema(list(COLUMNS.items())))):
        conn.execute("CREATE OR REPLACE TABLE coverage_plan AS SELECT * FROM incoming_plan ORDER BY field_path")
    counts = dict.fromkeys(FILLABLE, 0)
    for row in rows:
        counts[row["fillable"]] += 1
    return counts


LAYER_SUMMARY = """
SELECT layer, count(*) AS fields,
       count(*) FILTER (fillable = 'offline') AS offline,
       count(*) FILTER (fillable = 'live') AS live_only,
       count(*) FILTER (fillable = 'unobservable') AS unobservable,
       count(*) FILTER (fillable = 'unplanned') AS unplanned,
       count(*) FILTER (len(live_sources) > 0) AS with_live_source
FROM coverage_plan GROUP BY layer ORDER BY layer
"""
