"""The ``gwm`` command line: ``gwm sql "<query>"``, ``gwm fields [PREFIX]``, ``gwm coverage [PREFIX]``,
``gwm predict FIELD...`` and ``gwm warehouse export DIR``.

Imports no Dagster, so it starts fast. ``gwm sql`` opens the warehouse read-only; while a
materialization holds the file it waits and retries instead of failing. With ``--parquet DIR`` (or
``GWM_WAREHOUSE_PARQUET``) ``gwm sql`` and ``gwm coverage`` read the Parquet export instead of the file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import duckdb

from gwm_assets.coverage.heatmap import text_heatmap
from gwm_assets.resources.paths import (
    checkpoints_dir,
    curriculum_path,
    schema_path,
    warehouse_parquet_dir,
    warehouse_path,
)
from gwm_assets.warehouse import WarehouseBusy, WarehouseMissing, open_warehouse
from gwm_assets.warehouse.parquet import ParquetExportError, export_warehouse
from gwm_model.schema import SchemaError, default_world


def format_table(columns: Sequence[str], rows: Sequence[Sequence[object]], max_width: int = 80) -> str:
    """Aligned plain-text table; long cells are cut at ``max_width`` characters."""

    def cell(value: object) -> str:
        text = "NULL" if value is None else str(value)
        text = text.replace("\n", " ")
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    body = [[cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in body]) for i, c in enumerate(columns)]
    numeric = [bool(rows) and all(isinstance(row[i], int | float) or row[i] is None for row in rows)
               for i in range(len(columns))]

    def line(values: Sequence[str]) -> str:
        cells = zip(values, widths, numeric, strict=True)
        return "  ".join(v.rjust(w) if right else v.ljust(w) for v, w, right in cells)

    out = [line(columns), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in body)
    return "\n".join(s.rstrip() for s in out)


def cmd_sql(args: argparse.Namespace) -> int:
    def waiting(waited: float, exc: BaseException) -> None:
        if not getattr(waiting, "told", False):
            print(f"gwm: the warehouse is locked by a running materialization; waiting "
                  f"(up to {args.timeout:.0f} s)...", file=sys.stderr)
            waiting.told = True

    with open_warehouse(args.warehouse, read_only=True, timeout_s=args.timeout, on_wait=waiting,
                        parquet_dir=args.parquet or None) as conn:
        try:
            rel = conn.sql(args.query)
        except duckdb.Error as exc:
            print(f"gwm sql: {exc}", file=sys.stderr)
            return 1
        if rel is None:  # a statement without a result set
            return 0
        rows = rel.fetchmany(args.max_rows + 1)
        columns = rel.columns
    shown = rows[: args.max_rows]
    print(format_table(columns, shown, max_width=args.max_width))
    more = "" if len(rows) <= args.max_rows else f" (first {args.max_rows}; raise --max-rows to see more)"
    print(f"({len(shown)} row{'s' if len(shown) != 1 else ''}){more}")
    return 0


def cmd_fields(args: argparse.Namespace) -> int:
    world = default_world(args.schema)
    entities = dict(e.split(":", 1) if ":" in e else (e, None) for e in args.entity)
    projection = world.project(include=[args.prefix] if args.prefix else ["*"], entities=entities)
    prefix = args.prefix or ""
    specs = [f for f in projection.fields if args.kind in (None, f.kind)
             and (not prefix or f.path == prefix or f.path.startswith(prefix + "."))]
    rows = [(f.path, f.kind, f.period, f.unit, f.loss_weight, f"{f.h}x{f.w}",
             "out" if f.is_output else "in", f.description) for f in specs]
    print(format_table(("path", "kind", "period", "unit", "weight", "size", "role", "description"), rows,
                       max_width=args.max_width))
    leaves = sum(1 for f in specs if f.kind == "leaf")
    print(f"({len(specs)} fields: {leaves} leaf, {len(specs) - leaves} coarse; schema {world.schema_hash})")
    return 0


def cmd_coverage(args: argparse.Namespace) -> int:
    with open_warehouse(args.warehouse, read_only=True, timeout_s=args.timeout,
                        parquet_dir=args.parquet or None) as conn:
        views = {r[0] for r in conn.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
        if "field_coverage" not in views:
            print("gwm coverage: the coverage views do not exist yet. Fix: run `make run` (or materialize the "
                  "`coverage` asset)", file=sys.stderr)
            return 2
        if not args.prefix:
            rel = conn.sql("SELECT * FROM layer_coverage")
            print(format_table(rel.columns, rel.fetchall()))
            print()
            print(text_heatmap(conn, ""))
            return 0
        rel = conn.sql("""SELECT field_path, kind, array_to_string(sources, ',') AS sources, n_obs, first_ts, last_ts,
                                 declared_period, observed_period_days, staleness_days, is_stale,
                                 round(axis_share, 3) AS axis_share
                          FROM field_coverage WHERE field_path = ? OR field_path LIKE ? || '.%'
                          ORDER BY n_obs = 0, field_path""", params=[args.prefix, args.prefix])
        rows = rel.fetchall()
        if not rows:
            print(f"gwm coverage: no field under '{args.prefix}'. Fix: see `gwm fields` for valid paths",
                  file=sys.stderr)
            return 2
        print(format_table(rel.columns, rows))
        with_data = sum(1 for r in rows if r[3] > 0)
        print(f"({len(rows)} fields under {args.prefix}: {with_data} with data)")
        print()
        print(text_heatmap(conn, args.prefix))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    with open_warehouse(args.warehouse, read_only=True, timeout_s=args.timeout) as conn:
        report = export_warehouse(conn, args.directory)
    rows = [(t, e["rows"], e["version"], "written" if t in report.written else "unchanged", e["path"])
            for t, e in report.tables.items()]
    print(format_table(("table", "rows", "version", "status", "path"), rows))
    dropped = f"; dropped {', '.join(report.dropped)}" if report.dropped else ""
    print(f"({len(rows)} tables in {report.directory}: {len(report.written)} written, {len(report.kept)} unchanged"
          f"{dropped}{'' if report.changed else '; manifest unchanged'})")
    return 0


def _number(value: float) -> float | None:
    return None if value != value else float(f"{value:.5g}")  # NaN (no spread measured) prints as NULL


def cmd_predict(args: argparse.Namespace) -> int:
    from gwm_assets.forecasts.build import ForecastInputError
    from gwm_assets.forecasts.predict import predict_fields
    from gwm_model.curriculum import CurriculumError, load_curriculum
    from gwm_model.inference import ForecastRequestError, ObservationsInputError

    def waiting(waited: float, exc: BaseException) -> None:
        if not getattr(waiting, "told", False):
            print(f"gwm: the warehouse is locked by a running materialization; waiting (up to {args.timeout:.0f} s)...",
                  file=sys.stderr)
            waiting.told = True

    checkpoints = Path(args.checkpoints) if args.checkpoints else checkpoints_dir(args.warehouse)
    try:
        result = predict_fields(load_curriculum(args.curriculum), default_world(args.schema), Path(args.warehouse),
                                checkpoints, args.fields, node=args.node, as_of=args.as_of, horizon=args.horizon,
                                timeout_s=args.timeout, on_wait=waiting)
    except (ForecastRequestError, ObservationsInputError, ForecastInputError, CurriculumError) as exc:
        print(f"gwm predict: {exc}", file=sys.stderr)
        return 2
    frame = result.frame
    rows = [(r.field_path, str(r.target_ts)[:10], int(r.horizon), _number(r.mean), _number(r.q05), _number(r.q95),
             _number(r.naive), r.naive_method, str(r.last_observed)[:10], r.unit) for r in frame.itertuples()]
    print(f"node {result.node}, as of {str(result.model.as_of)[:19]} ({result.model.axis_template.frequency} steps; "
          f"checkpoint {result.model.manifest.get('weights_sha256', '')[:12]})")
    columns = ("field_path", "target_ts", "horizon", "mean", "q05", "q95", "naive", "naive_method", "last_observed",
               "unit")
    print(format_table(columns, rows))
    if args.plot:
        from gwm_assets.forecasts.plots import forecast_png

        png = forecast_png(f"{result.node}: forecast as of {str(result.model.as_of)[:19]}", result.history, frame,
                           result.units)
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        Path(args.plot).write_bytes(png)
        print(f"plot: {args.plot}")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from gwm_assets.ops.ui_launcher import launch

    return launch(args.host, args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gwm", description="gwm: world-model feature store")
    sub = parser.add_subparsers(dest="command", required=True)

    sql = sub.add_parser("sql", help="run a read-only SQL query on the warehouse and print a table")
    sql.add_argument("query", help='e.g. "select layer, count(*) from fields group by layer"')
    sql.add_argument("--warehouse", default=str(warehouse_path()), help="DuckDB file (default: %(default)s)")
    sql.add_argument("--timeout", type=float, default=300.0,
                     help="seconds to wait while a materialization holds the file (default: %(default)s)")
    sql.add_argument("--max-rows", type=int, default=200, help="rows to print (default: %(default)s)")
    sql.add_argument("--max-width", type=int, default=80, help="cut cells longer than this")
    sql.add_argument("--parquet", default=str(warehouse_parquet_dir() or ""),
                     help="read this Parquet export instead of the file (default: GWM_WAREHOUSE_PARQUET)")
    sql.set_defaults(func=cmd_sql)

    flds = sub.add_parser("fields", help="list world fields (optionally under a path prefix)")
    flds.add_argument("prefix", nargs="?", help="path prefix, e.g. financial or country_us.macro")
    flds.add_argument("--entity", action="append", default=[], metavar="NAME[:TYPE]",
                      help="add an entity instance, e.g. country_jp or firm_NVDA:Business")
    flds.add_argument("--kind", choices=("leaf", "coarse"), help="only leaf or only coarse fields")
    flds.add_argument("--schema", default=str(schema_path() or "") or None, help="world schema YAML")
    flds.add_argument("--max-width", type=int, default=70, help="cut cells longer than this")
    flds.set_defaults(func=cmd_fields)

    cov = sub.add_parser("coverage", help="field coverage: per layer, or per field under a path prefix")
    cov.add_argument("prefix", nargs="?", help="path prefix, e.g. financial.yield_curves")
    cov.add_argument("--warehouse", default=str(warehouse_path()), help="DuckDB file (default: %(default)s)")
    cov.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for a running materialization")
    cov.add_argument("--parquet", default=str(warehouse_parquet_dir() or ""),
                     help="read this Parquet export instead of the file (default: GWM_WAREHOUSE_PARQUET)")
    cov.set_defaults(func=cmd_coverage)

    wh = sub.add_parser("warehouse", help="the warehouse as Parquet files")
    actions = wh.add_subparsers(dest="action", required=True)
    export = actions.add_parser("export", help="write every table as Parquet under DIR: only changed tables, "
                                               "atomically (readers see the old export or the new one)")
    export.add_argument("directory", help="export directory, e.g. warehouse/parquet")
    export.add_argument("--warehouse", default=str(warehouse_path()), help="DuckDB file (default: %(default)s)")
    export.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for a running materialization")
    export.set_defaults(func=cmd_export)

    pred = sub.add_parser("predict", help="forecast world fields from a trained checkpoint and the warehouse")
    pred.add_argument("fields", nargs="+", metavar="FIELD", help="field paths, e.g. financial.yield_curves.ten_year")
    pred.add_argument("--node", help="curriculum node whose checkpoint forecasts (default: the most integrated "
                                     "trained node that forecasts every FIELD)")
    pred.add_argument("--as-of", help="forecast as known at this date or instant (default: the newest publication "
                                      "among the node's fields)")
    pred.add_argument("--horizon", type=int, help="steps ahead (default: the node's canvas horizon)")
    pred.add_argument("--plot", metavar="PNG", help="also draw history, forecast mean, 90%% band and naive forecast")
    pred.add_argument("--warehouse", default=str(warehouse_path()), help="DuckDB file (default: %(default)s)")
    pred.add_argument("--checkpoints", default="", help="checkpoint directory (default: beside the warehouse)")
    pred.add_argument("--curriculum", default=str(curriculum_path()), help="curriculum (default: %(default)s)")
    pred.add_argument("--schema", default=str(schema_path() or "") or None, help="world schema YAML")
    pred.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for a running materialization")
    pred.set_defaults(func=cmd_predict)

    ui = sub.add_parser("ui", help="open the Dagster UI (webserver and daemon) on gwm after checking the port, "
                                   "DAGSTER_HOME and the curriculum")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    ui.add_argument("--port", type=int, default=3000, help="port (default: %(default)s)")
    ui.set_defaults(func=cmd_ui)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (SchemaError, WarehouseMissing, WarehouseBusy, ParquetExportError) as exc:
        print(f"gwm {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `gwm fields | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
