"""Expectation suites as data: which frame to validate, and the expectations it must meet.

A suite file (YAML) names a ``frame``: SQL that selects the rows to validate, with computed columns
(a publication lag, a spacing ratio, a plausible range joined in) so that every expectation is a plain
Great Expectations column expectation. ``{rows}`` in the frame is the relation validated (the table
itself, or the observations build's candidate rows) and ``{now}`` the validation time.

Each expectation says whether it is ``row_level`` (failing rows are quarantined before they are
published) and ``blocking`` (a failure stops downstream assets). Row-level expectations are also
translated to SQL, so the build quarantines exactly the rows the check would flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml

from gwm_model.schema import SchemaError


class SuiteError(SchemaError):
    """A suite file that cannot be used: unknown expectation type, missing keys, bad YAML."""


def _between(kw: dict) -> str:
    col, parts = kw["column"], []
    if kw.get("min_value") is not None:
        parts.append(f"{col} >= {float(kw['min_value'])!r}")
    if kw.get("max_value") is not None:
        parts.append(f"{col} <= {float(kw['max_value'])!r}")
    # GX skips missing values (NULL, and NaN in pandas); so does the SQL form
    return f"({col} IS NULL OR isnan({col}) OR ({' AND '.join(parts) or 'true'}))"


def _pair_greater(kw: dict) -> str:
    a, b = kw["column_A"], kw["column_B"]
    op = ">=" if kw.get("or_equal") else ">"
    # GX compares NaN as failing; DuckDB orders NaN above everything, so NaN is spelled out
    return f"({a} IS NULL OR {b} IS NULL OR (NOT isnan({a}) AND {a} {op} {b}))"


# expectation type -> (required kwargs, SQL predicate that holds for a passing row, or None: table-level)
SUPPORTED = {
    "expect_column_values_to_not_be_null": (("column",), lambda kw: f"({kw['column']} IS NOT NULL "
                                                                     f"AND NOT coalesce(isnan(TRY_CAST({kw['column']} "
                                                                     f"AS DOUBLE)), false))"),
    "expect_column_values_to_be_between": (("column",), _between),
    "expect_column_pair_values_a_to_be_greater_than_b": (("column_A", "column_B"), _pair_greater),
    "expect_compound_columns_to_be_unique": (("column_list",), None),
    "expect_table_row_count_to_be_between": ((), None),
}
EXPECTATION_KEYS = {"name", "expect", "kwargs", "row_level", "blocking", "reason", "description"}


@dataclass(frozen=True)
class Expectation:
    name: str
    expect: str
    kwargs: dict
    description: str
    row_level: bool = False
    blocking: bool = False
    reason: str = "''"  # SQL expression: why a failing row fails (row-level expectations)

    @property
    def gx_class_name(self) -> str:
        return "".join(part.capitalize() if part not in ("a", "b") else part.upper()
                       for part in self.expect.split("_"))

    def sql_pass(self) -> str:
        """SQL that is true for a row meeting this expectation (row-level expectations only)."""
        predicate = SUPPORTED[self.expect][1]
        if predicate is None:
            raise SuiteError(f"{self.name}: {self.expect} is not a row-level expectation")
        return f"coalesce({predicate(self.kwargs)}, true)"


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    frame: str
    series: tuple[str, ...]
    expectations: tuple[Expectation, ...] = field(default=())

    def frame_sql(self, now: datetime, rows: str | None = None) -> str:
        return self.frame.format(rows=rows or self.name, now=f"TIMESTAMP '{now.isoformat(sep=' ')}'")

    @property
    def row_level(self) -> tuple[Expectation, ...]:
        return tuple(e for e in self.expectations if e.row_level)

    def series_label_sql(self, alias: str = "") -> str:
        prefix = f"{alias}." if alias else ""
        return " || ' / ' || ".join(f"CAST({prefix}{c} AS VARCHAR)" for c in self.series)


def load_suite(path: Path) -> Suite:
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML ({exc}). Fix: correct the syntax") from exc
    if not isinstance(doc, dict) or not {"table", "frame", "series", "expectations"} <= set(doc):
        raise SuiteError(f"{path}: a suite needs 'table', 'frame', 'series' and 'expectations'. Fix: see "
                         "gwm_assets/observations/expectations/observations.yaml")
    expectations, names = [], set()
    for i, raw in enumerate(doc["expectations"] or []):
        where = f"{path}: expectations[{i}]"
        if not isinstance(raw, dict) or not {"name", "expect", "description"} <= set(raw):
            raise SuiteError(f"{where}: needs name, expect and description")
        unknown = set(raw) - EXPECTATION_KEYS
        if unknown:
            raise SuiteError(f"{where} ({raw['name']}): unknown keys {sorted(unknown)}. Fix: use only "
                             f"{sorted(EXPECTATION_KEYS)}")
        if raw["expect"] not in SUPPORTED:
            raise SuiteError(f"{where} ({raw['name']}): unsupported expectation '{raw['expect']}'. Fix: use one of "
                             f"{', '.join(SUPPORTED)}")
        required, predicate = SUPPORTED[raw["expect"]]
        kwargs = dict(raw.get("kwargs") or {})
        missing = [k for k in required if k not in kwargs]
        if missing:
            raise SuiteError(f"{where} ({raw['name']}): {raw['expect']} needs kwargs {missing}")
        if raw.get("row_level") and predicate is None:
            raise SuiteError(f"{where} ({raw['name']}): {raw['expect']} cannot be row_level. Fix: remove row_level")
        if raw["name"] in names:
            raise SuiteError(f"{where}: expectation name '{raw['name']}' is used twice")
        names.add(raw["name"])
        expectations.append(Expectation(name=raw["name"], expect=raw["expect"], kwargs=kwargs,
                                        description=raw["description"], row_level=bool(raw.get("row_level")),
                                        blocking=bool(raw.get("blocking")), reason=raw.get("reason", "''")))
    return Suite(name=doc["table"], path=path, frame=doc["frame"], series=tuple(doc["series"]),
                 expectations=tuple(expectations))
