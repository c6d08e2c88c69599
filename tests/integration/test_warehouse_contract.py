"""One contract for every Warehouse adapter: DuckDB (a file) and BigQuery (bqemulator), loaded
with the same rows (tests/fakes/warehouse_tables.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cashmatch.domain.contract import TABLES
from cashmatch.ports import Warehouse, WarehouseSchemaError
from tests.fakes.warehouse_tables import bigquery_dataset, duckdb_file

pytestmark = pytest.mark.integration

# make(skip_table=..., drop_column=(table, column), extra=...) -> a Warehouse over fresh tables
MakeWarehouse = Callable[..., Warehouse]


@pytest.fixture(params=["duckdb", "bigquery"])
def make_warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> MakeWarehouse:
    if request.param == "duckdb":
        from cashmatch.adapters.local.warehouse import DuckDBWarehouse

        def make_duckdb(absent: bool = False, **shape: Any) -> Warehouse:
            path = tmp_path / f"w-{uuid.uuid4().hex[:8]}.duckdb"
            return DuckDBWarehouse(path if absent else duckdb_file(path, **shape))

        return make_duckdb

    from cashmatch.adapters.gcp.warehouse import BigQueryWarehouse

    emulator = request.getfixturevalue("bq_emulator")
    client = emulator.client()

    def make_bigquery(absent: bool = False, **shape: Any) -> Warehouse:
        if absent:
            return BigQueryWarehouse(client, f"{emulator.project}.absent")
        return BigQueryWarehouse(client, bigquery_dataset(client, emulator.project, **shape))

    return make_bigquery


def test_satisfies_the_port(make_warehouse: MakeWarehouse) -> None:
    assert isinstance(make_warehouse(), Warehouse)


def test_reads_months_and_open_invoices(make_warehouse: MakeWarehouse) -> None:
    warehouse = make_warehouse()
    warehouse.check_schema()
    assert warehouse.month_bounds() == ("2025-01", "2025-03")
    feb, mar = dt.date(2025, 2, 1), dt.date(2025, 3, 1)
    transfers = warehouse.transfers(feb, mar)
    assert transfers["transfer_id"].tolist() == ["T2", "T3"]
    assert transfers["amount"].dtype == "float64"
    open_feb = warehouse.open_invoices(feb, mar).set_index("invoice_id")
    # I1 was paid in January; I3 issued in February; I5 only in March
    assert sorted(open_feb.index) == ["I2", "I3", "I4"]
    assert open_feb.loc["I4", "open_amount"] == 1000.0
    open_mar = warehouse.open_invoices(mar, dt.date(2025, 4, 1)).set_index("invoice_id")
    # I2's 5.00 remainder (a fee) counts as settled; I4 stays open with what is left
    assert "I2" not in open_mar.index
    assert open_mar.loc["I4", "open_amount"] == 600.0
    assert "I5" in open_mar.index
    labels = warehouse.matches(feb, mar)
    assert labels["transfer_id"].tolist() == ["T2", "T3"]


def test_an_empty_window_keeps_columns(make_warehouse: MakeWarehouse) -> None:
    warehouse = make_warehouse()
    start, end = dt.date(2024, 1, 1), dt.date(2024, 2, 1)
    assert list(warehouse.transfers(start, end).columns) == TABLES["transfers"].column_names
    assert warehouse.matches(start, end).empty


def test_missing_table_and_column_are_named(make_warehouse: MakeWarehouse) -> None:
    with pytest.raises(WarehouseSchemaError, match="missing table 'matches'"):
        make_warehouse(skip_table="matches").check_schema()
    with pytest.raises(WarehouseSchemaError, match="'transfers' lacks column.*title"):
        make_warehouse(drop_column=("transfers", "title")).check_schema()
    with pytest.raises(WarehouseSchemaError, match="does not exist"):
        make_warehouse(absent=True).check_schema()


def test_a_column_of_the_wrong_type_is_named(make_warehouse: MakeWarehouse) -> None:
    warehouse = make_warehouse(as_text=("transfers", "booking_date"))
    with pytest.raises(WarehouseSchemaError, match=r"transfers.booking_date is .*wants a date"):
        warehouse.check_schema()


def test_rows_no_month_can_hold_are_listed(make_warehouse: MakeWarehouse) -> None:
    assert make_warehouse().unplaced().empty
    unplaced = make_warehouse(stray_label=True).unplaced()
    assert unplaced.to_dict("records") == [
        {"table": "matches", "key": "T9/I1", "reason": "unknown transfer"}
    ]


def test_extra_columns_and_tables_do_not_matter(make_warehouse: MakeWarehouse) -> None:
    warehouse = make_warehouse(extra=True)
    warehouse.check_schema()
    assert "bank_ref" not in warehouse.transfers(dt.date(2025, 1, 1), dt.date(2025, 4, 1)).columns


def test_a_column_of_the_wrong_type_parks_the_month_at_the_first_attempt(
    make_warehouse: MakeWarehouse, make_ports: Callable[..., Any]
) -> None:
    """Not only check_schema raising: the collector's event, delivered by the bus, is parked
    with the column named, once, instead of retried."""
    import dataclasses

    from cashmatch.domain.events import MonthClosed, make_event
    from cashmatch.entrypoints.service_table import handlers
    from cashmatch.service_layer.dispatch import run_until_idle
    from cashmatch.service_layer.publishing import publish_event

    ports = dataclasses.replace(
        make_ports(), warehouse=make_warehouse(as_text=("transfers", "booking_date"))
    )
    event = make_event(MonthClosed(month="2025-03"), source="/test")
    publish_event(ports.bus, event)

    run_until_idle(ports, handlers(["collector"]), timeout_s=60)

    (parked,) = ports.bus.dead_letters()
    assert parked.message_id == event.id and parked.subscription == "collector"
    assert parked.attempts == 1
    assert "WarehouseSchemaError" in parked.detail and "transfers.booking_date" in parked.detail
    assert ports.bus.log(topic="dataset.ready") == []
