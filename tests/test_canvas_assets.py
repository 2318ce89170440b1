"""`canvas/<node>` assets through real Dagster materializations: files, manifest, `canvases` rows, data versions."""

from __future__ import annotations

import json

import dagster as dg
import duckdb

from gwm_assets.canvases.assets import canvas_assets
from gwm_assets.definitions import DATA_ASSETS as ASSETS
from gwm_assets.resources.sources import SourceSettings
from gwm_assets.resources.warehouse import WarehouseResource
from gwm_assets.resources.world import WorldSchemaResource
from gwm_model.canvas import Canvas
from gwm_model.curriculum import load_curriculum

BASE = [a for a in ASSETS if not any(k.path[0] == "canvas" for k in a.keys)]
CURRICULUM = """
canvas: {frequency: weekly, start: 2023-01-01, train_fraction: 0.5}
nodes:
  - {name: rates, tier: 0, include: [financial.yield_curves], data_sources: [tabular]}
  - {name: labour, tier: 0, include: [country_us.macro.labor], data_sources: [tabular], canvas: {frequency: monthly}}
  - {name: politics, tier: 0, include: [country_us.politics], data_sources: []}
  - {name: both, tier: 1, include: [financial.yield_curves, country_us.macro.labor], parents: [rates, labour],
     data_sources: [tabular]}
"""


def setup_home(tmp_path, rates_rows: str, curriculum: str = CURRICULUM):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    folder = tmp_path / "tabular"
    folder.mkdir(exist_ok=True)
    (folder / "rates.csv").write_text("day,ten_year\n" + rates_rows)
    (folder / "rates.yaml").write_text("dataset: rates\npath: rates.csv\ndate_column: day\ncolumns:\n"
                                       "  ten_year: {field: financial.yield_curves.ten_year, frequency: daily}\n")
    (folder / "jobs.csv").write_text("day,unrate\n" + "".join(f"2023-{m:02d}-01,3.{m}\n" for m in range(1, 10)))
    (folder / "jobs.yaml").write_text("dataset: jobs\npath: jobs.csv\ndate_column: day\ncolumns:\n"
                                      "  unrate: {field: country_us.macro.labor.unemployment_rate, frequency: monthly,"
                                      " release_lag_days: 35}\n")
    (tmp_path / "curriculum.yaml").write_text(curriculum)
    return folder


def materialize(tmp_path, folder, selection=None):
    curriculum = load_curriculum(tmp_path / "curriculum.yaml")
    resources = {"warehouse": WarehouseResource(path=str(tmp_path / "w.duckdb")),
                 "world": WorldSchemaResource(schema_path=""),
                 "settings": SourceSettings(live=False, fred_api_key="", plain_requests=True,
                                            tabular_dir=str(folder))}
    base = ["fields", "source_series", "raw_tabular", "observations"]
    nodes = [f"canvas/{n}" for n in curriculum.nodes]
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        return dg.materialize([*BASE, *canvas_assets(curriculum)], resources=resources, instance=instance,
                              selection=selection or [*base, *nodes], raise_on_error=False)


def versions(result):
    return {e.asset_key.path[-1]: e.materialization.metadata for e in result.get_asset_materialization_events()
            if e.asset_key.path[0] == "canvas"}


RATES = "".join(f"2023-{m:02d}-{d:02d},{3 + m / 10 + d / 100:.2f}\n" for m in range(1, 10) for d in (2, 9, 16))


def test_canvases_materialize_with_files_rows_and_metadata(tmp_path):
    folder = setup_home(tmp_path, RATES)
    result = materialize(tmp_path, folder)
    assert result.success
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT node, n_fields, n_fields_with_data, presence_share, frequency, note FROM canvases").fetchall()}
    assert set(rows) == {"rates", "labour", "politics", "both"}
    assert rows["rates"][1] == 1 and rows["labour"][1] == 1 and rows["both"][1] == 2 and rows["labour"][3] == "monthly"
    assert rows["politics"][1] == 0 and "declares no data sources" in rows["politics"][4]
    canvas = Canvas.load(tmp_path / "canvases" / "labour")
    column = canvas.field_index("country_us.macro.labor.unemployment_rate")
    assert canvas.presence[:, column].sum() == 9 and canvas.axis.frequency == "monthly"
    assert str(canvas.available_at[0, column])[:10] == "2023-02-05"  # January's value, 35 days after its date
    manifest = json.loads((tmp_path / "canvases" / "politics" / "manifest.json").read_text())
    assert manifest["fields_with_data"] == 0 and len(manifest["fields_without_data"]) == len(manifest["fields"])
    assert manifest["node"]["note"].startswith("no data yet")
    meta = versions(result)
    assert meta["rates"]["fields_with_data"].value == 1
    assert meta["rates"]["presence_heatmap"].value.startswith("![presence](data:image/png;base64,")


def test_data_version_changes_only_for_nodes_whose_observations_changed(tmp_path):
    folder = setup_home(tmp_path, RATES)
    first = versions(materialize(tmp_path, folder))
    again = versions(materialize(tmp_path, folder))
    assert {n: m["data_version"].value for n, m in again.items()} == {n: m["data_version"].value
                                                                       for n, m in first.items()}
    assert not any(m["rebuilt"].value for m in again.values())  # nothing new: files kept as they were
    (folder / "rates.csv").write_text("day,ten_year\n" + RATES + "2023-09-23,4.5\n")  # one new rates row
    third = versions(materialize(tmp_path, folder))
    changed = {n for n in third if third[n]["data_version"].value != first[n]["data_version"].value}
    assert changed == {"rates", "both"}
    assert third["rates"]["rebuilt"].value and not third["labour"]["rebuilt"].value


def test_a_node_without_data_although_its_sources_delivered_fails_before_writing(tmp_path):
    curriculum = CURRICULUM + "  - {name: oil, tier: 0, include: [resources.energy], data_sources: [tabular]}\n"
    folder = setup_home(tmp_path, RATES, curriculum)
    result = materialize(tmp_path, folder, ["fields", "source_series", "raw_tabular", "observations", "canvas/oil"])
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert "node 'oil': none of its" in message and "Fix:" in message
    assert not (tmp_path / "canvases" / "oil").exists()


def test_a_time_axis_of_zero_length_fails_before_writing(tmp_path):
    curriculum = CURRICULUM + ("  - {name: late, tier: 0, include: [financial.yield_curves], data_sources: [tabular],"
                               " canvas: {start: 2030-01-01}}\n")
    folder = setup_home(tmp_path, RATES, curriculum)
    result = materialize(tmp_path, folder, ["fields", "source_series", "raw_tabular", "observations", "canvas/late"])
    assert not result.success
    message = str(next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data.error)
    assert "node 'late': its time axis is empty" in message
    assert not (tmp_path / "canvases" / "late").exists()
