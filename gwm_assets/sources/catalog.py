"""The mapping catalog (``catalog.yaml`` + tabular mapping files): source series -> world field paths."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import yaml

from gwm_model.schema import PERIODS, SchemaError, WorldSchema
from gwm_model.schema.periods import PERIOD_DAYS

CATALOG_PATH = Path(__file__).with_name("catalog.yaml")
SOURCES = ("fred", "yahoo", "pmi", "earnings", "tabular", "news")
TRANSFORM_RE = re.compile(r"^(level|pct_yoy|pct_change|pct_annualized|diff|log_return|scale:-?[0-9.eE+-]+)$")
PRICE_COLUMNS = ("close", "adj_close")


@dataclass(frozen=True)
class SeriesMapping:
    source: str
    key: str
    field: str
    transform: str
    frequency: str
    release_lag_days: int
    column: str = "close"
    origin: str = ""

    @property
    def scale(self) -> float | None:
        return float(self.transform.split(":", 1)[1]) if self.transform.startswith("scale:") else None


class CatalogError(SchemaError):
    """A catalog entry is invalid; the message names the file, line, entry and fix."""


def _entries(path: Path) -> list[tuple[int, dict]]:
    """(line, mapping) for each entry under ``series:``, from one parse of the file."""
    loader = yaml.SafeLoader(path.read_text(encoding="utf-8"))
    try:
        node = loader.get_single_node()
        doc = loader.construct_document(node) if node is not None else {}
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML ({exc}). Fix: correct the syntax") from exc
    finally:
        loader.dispose()
    series = doc.get("series") if isinstance(doc, dict) else None
    if not isinstance(series, list):
        raise CatalogError(f"{path}: expected a list under 'series:'. Fix: see gwm_assets/sources/catalog.yaml")
    items = next(v for k, v in node.value if k.value == "series")
    return [(item.start_mark.line + 1, raw) for item, raw in zip(items.value, series, strict=True)]


def unit_mismatch(source: str, transform: str, frequency: str, unit: str) -> tuple[str, str] | None:
    """Why a series cannot fill a field of ``unit`` (problem, fix), or None when the units agree.

    A growth transform makes values in its own unit, so the field must carry that unit (on annual data a
    year-on-year change is also the annualised one); latent fields are never observed; embeddings come
    only from the text path; a categorical regime takes a level (a 0/1 flag), never a transform of it.
    """
    kind = transform.split(":", 1)[0]
    if unit == "latent":
        return ("the field is latent by design (a model-internal quantity with no observation)",
                "map the series to an observable field")
    if unit == "embedding" and source != "news":
        return "embedding fields are filled by the text path only", "map a news feed or corpus to it"
    if unit == "category" and kind != "level":
        return f"a categorical field takes the level of a flag, not '{transform}'", "use transform: level"
    if kind in ("pct_yoy", "pct_change", "pct_annualized") and unit != kind:
        if not (frequency == "annual" and {kind, unit} == {"pct_yoy", "pct_annualized"}):
            return (f"transform '{kind}' makes {kind} values but the field's unit is '{unit}'",
                    f"use a transform that yields {unit}, or map to a field measured in {kind}")
    return None


def parse_entry(raw: dict, where: str, schema: WorldSchema) -> SeriesMapping:
    def fail(problem: str, fix: str) -> CatalogError:
        return CatalogError(f"{where}: {problem}. Fix: {fix}")

    if not isinstance(raw, dict):
        raise fail("entry is not a mapping", "write {source: ..., key: ..., field: ..., ...}")
    allowed = {"source", "key", "field", "transform", "frequency", "release_lag_days", "column"}
    unknown = set(raw) - allowed
    if unknown:
        raise fail(f"unknown keys {sorted(unknown)}", f"use only {sorted(allowed)}")
    for name in ("source", "key", "field", "frequency"):
        if not raw.get(name):
            raise fail(f"missing '{name}'", f"add '{name}:'")
    if raw["source"] not in SOURCES:
        raise fail(f"unknown source '{raw['source']}'", f"use one of {', '.join(SOURCES)}")
    field = str(raw["field"])
    if field not in schema:
        raise fail(str(schema.unknown_path(field)), "map the series to an existing field or add the field")
    if schema.field(field).kind != "leaf":
        raise fail(f"'{field}' is a coarse summary field", "map to a leaf field")
    transform = str(raw.get("transform", "level"))
    if not TRANSFORM_RE.match(transform):
        raise fail(f"unknown transform '{transform}'",
                   "use level, scale:<k>, pct_yoy, pct_change, pct_annualized, diff or log_return")
    if raw["frequency"] not in PERIODS:
        raise fail(f"unknown frequency '{raw['frequency']}'", f"use one of {', '.join(PERIODS)}")
    if (problem := unit_mismatch(raw["source"], transform, raw["frequency"], schema.field(field).unit)) is not None:
        raise fail(f"{raw['source']} series '{raw['key']}' -> '{field}': {problem[0]}", problem[1])
    lag = raw.get("release_lag_days", 0)
    if not isinstance(lag, int) or lag < 0:
        raise fail(f"release_lag_days must be a whole number of days >= 0, got {lag!r}", "e.g. release_lag_days: 35")
    column = str(raw.get("column", "close"))
    if column not in PRICE_COLUMNS:
        raise fail(f"unknown price column '{column}'", f"use one of {PRICE_COLUMNS}")
    return SeriesMapping(source=raw["source"], key=str(raw["key"]), field=field, transform=transform,
                         frequency=raw["frequency"], release_lag_days=lag, column=column, origin=where)


def load_catalog(schema: WorldSchema, path: Path = CATALOG_PATH,
                 extra: list[SeriesMapping] | None = None) -> list[SeriesMapping]:
    """Validated mappings: known sources, fields that exist, one field per (source, key) and vice versa."""
    mappings = [parse_entry(raw, f"{path}:{line}", schema) for line, raw in _entries(Path(path))]
    mappings += list(extra or [])
    by_key: dict[tuple[str, str], SeriesMapping] = {}
    by_field: dict[tuple[str, str], SeriesMapping] = {}
    for m in mappings:
        if (m.source, m.key) in by_key:
            raise CatalogError(f"{m.origin}: {m.source} series '{m.key}' is mapped twice (also at "
                               f"{by_key[(m.source, m.key)].origin}). Fix: keep one entry")
        if (m.source, m.field) in by_field:
            raise CatalogError(f"{m.origin}: field '{m.field}' already takes {m.source} series "
                               f"'{by_field[(m.source, m.field)].key}'. Fix: one series per field and source")
        by_key[(m.source, m.key)] = m
        by_field[(m.source, m.field)] = m
    return mappings


def catalog_arrow(mappings: list[SeriesMapping]) -> pa.Table:
    rows = [{k: v for k, v in asdict(m).items() if k != "origin"}
            | {"frequency_days": PERIOD_DAYS[m.frequency], "defined_at": m.origin} for m in mappings]
    return pa.Table.from_pylist(rows)

