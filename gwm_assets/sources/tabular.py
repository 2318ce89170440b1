"""Tabular: any CSV or Parquet file plus a small mapping file, read with DuckDB.

A mapping file (YAML) names the file, its date column and, per value column, the world field it
feeds::

    dataset: my_rates                      # becomes the tabular key prefix: my_rates:<column>
    path: data/my_rates.csv                # relative to the mapping file; .csv or .parquet
    date_column: date
    columns:
      rate_10y: {field: financial.yield_curves.ten_year, frequency: daily, release_lag_days: 1}
      cpi:      {field: country_us.macro.inflation.headline_cpi, transform: pct_yoy, frequency: monthly}

Rows land in ``raw_tabular`` (dataset, series, date, value); text or non-finite values and
unparseable dates are rejected with the file, column and row named.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import yaml

from gwm_assets.sources.base import FetchResult, Reject, SourceError
from gwm_assets.sources.catalog import SeriesMapping, parse_entry
from gwm_assets.warehouse.raw_store import RawTableSpec
from gwm_model.schema import WorldSchema

SOURCE = "tabular"
RAW = RawTableSpec(
    name="raw_tabular",
    columns={"dataset": "VARCHAR", "series": "VARCHAR", "date": "DATE", "value": "DOUBLE"},
    key=("dataset", "series", "date"),
    values=("value",),
)
ARROW_SCHEMA = pa.schema([("dataset", pa.string()), ("series", pa.string()), ("date", pa.date32()),
                          ("value", pa.float64())])


@dataclass(frozen=True)
class TabularSpec:
    dataset: str
    path: Path
    date_column: str
    mappings: tuple[SeriesMapping, ...]
    mapping_file: Path

    @property
    def columns(self) -> list[str]:
        return [m.key.split(":", 1)[1] for m in self.mappings]


def load_mapping_file(path: Path, schema: WorldSchema) -> TabularSpec:
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SourceError(SOURCE, f"cannot read mapping file {path}: {exc}") from exc
    for key in ("dataset", "path", "date_column", "columns"):
        if not isinstance(doc, dict) or key not in doc:
            raise SourceError(SOURCE, f"{path}: missing '{key}'. Fix: see the tabular mapping format in "
                                      "gwm_assets/sources/tabular.py")
    data_path = (path.parent / doc["path"]).resolve()
    if data_path.suffix.lower() not in (".csv", ".parquet"):
        raise SourceError(SOURCE, f"{path}: '{data_path.name}' is neither .csv nor .parquet")
    mappings = []
    for column, spec in doc["columns"].items():
        raw = {"source": SOURCE, "key": f"{doc['dataset']}:{column}", **(spec or {})}
        mappings.append(parse_entry(raw, f"{path} column '{column}'", schema))
    return TabularSpec(dataset=str(doc["dataset"]), path=data_path, date_column=str(doc["date_column"]),
                       mappings=tuple(mappings), mapping_file=path)


def read_tabular(spec: TabularSpec) -> FetchResult:
    """Long rows (dataset, series, date, value) from the file; bad cells become rejects."""
    if not spec.path.exists():
        raise SourceError(SOURCE, f"data file {spec.path} (from {spec.mapping_file}) does not exist",
                          series=spec.dataset)
    reader = "read_parquet" if spec.path.suffix.lower() == ".parquet" else "read_csv"
    options = "" if reader == "read_parquet" else ", all_varchar = true"
    with duckdb.connect() as conn:
        try:
            rel = conn.sql(f"SELECT * FROM {reader}(?{options})", params=[str(spec.path)])
            names = rel.columns
            missing = [c for c in [spec.date_column, *spec.columns] if c not in names]
            if missing:
                raise SourceError(SOURCE, f"{spec.path} has no column(s) {missing}; it has {names}",
                                  series=spec.dataset)
            cols = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in [spec.date_column, *spec.columns])
            records = conn.sql(f"SELECT row_number() OVER () AS line, {cols} FROM {reader}(?{options})",
                               params=[str(spec.path)]).fetchall()
        except duckdb.Error as exc:
            raise SourceError(SOURCE, f"cannot read {spec.path}: {exc}", series=spec.dataset) from exc
    rows, rejects, seen = [], [], set()
    for line, day_text, *values in records:
        row_no = line + (1 if reader == "read_csv" else 0)  # +1: the CSV header line
        try:
            day = _parse_day(day_text)
        except ValueError:
            rejects.append(Reject(SOURCE, spec.dataset, None,
                                  f"{spec.path.name} row {row_no}: unparseable date {day_text!r}", {"row": row_no}))
            continue
        for column, text in zip(spec.columns, values, strict=True):
            key = f"{spec.dataset}:{column}"
            if text is None or text.strip() == "":
                continue  # an empty cell is a missing observation, not an error
            try:
                value = float(text)
            except ValueError:
                value = None
            if value is None or value != value or value in (float("inf"), float("-inf")):
                rejects.append(Reject(SOURCE, key, day, f"{spec.path.name} row {row_no} column '{column}': "
                                                        f"non-numeric value {text!r}", {"row": row_no, "value": text}))
                continue
            if (column, day) in seen:
                rejects.append(Reject(SOURCE, key, day, f"{spec.path.name} row {row_no}: duplicate date {day}",
                                      {"row": row_no, "value": text}))
                continue
            seen.add((column, day))
            rows.append({"dataset": spec.dataset, "series": column, "date": day, "value": value})
    return FetchResult(pa.Table.from_pylist(rows, schema=ARROW_SCHEMA), rejects)


def _parse_day(text: str | None):
    from datetime import date, datetime

    if text is None:
        raise ValueError("empty date")
    text = text.strip()
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return datetime.strptime(text, "%m/%d/%Y").date()


def mapping_files(directory: Path) -> list[Path]:
    return sorted(Path(directory).glob("*.yaml")) if Path(directory).is_dir() else []
