"""BigQueryWarehouse against bqemulator: the DuckDB warehouse's tests on the same tiny data
(tests/integration/test_duckdb_warehouse.py), and frame-for-frame equality with the DuckDB adapter."""

from __future__ import annotations

import datetime as dt
import uuid

import duckdb
import pandas as pd
import pytest

from shared.adapters.gcp.warehouse import BigQueryWarehouse, bigquery_schema
from shared.adapters.local.warehouse import DuckDBWarehouse
from shared.contract import TABLES, duckdb_ddl
from shared.ports import Warehouse, WarehouseSchemaError

pytestmark = pytest.mark.integration

INVOICES: list[tuple[str | None, ...]] = [
    (
        "I1",
        "FV/1",
        "receivable",
        "C1",
        "Acme",
        "123",
        "PL1",
        "PLN",
        "100.00",
        "2025-01-10",
        "2025-01-24",
    ),
    (
        "I2",
        "FV/2",
        "receivable",
        "C1",
        "Acme",
        "123",
        "PL1",
        "PLN",
        "200.00",
        "2025-01-15",
        "2025-01-29",
    ),
    (
        "I3",
        "FV/3",
        "receivable",
        "C2",
        "Beta",
        None,
        None,
        "PLN",
        "300.00",
        "2025-02-20",
        "2025-03-06",
    ),
    (
        "I4",
        "FV/4",
        "receivable",
        "C2",
        "Beta",
        None,
        None,
        "PLN",
        "1000.00",
        "2025-01-05",
        "2025-03-06",
    ),
    (
        "I5",
        "FV/5",
        "receivable",
        "C2",
        "Beta",
        None,
        None,
        "PLN",
        "50.00",
        "2025-03-05",
        "2025-03-06",
    ),
]
TRANSFERS: list[tuple[str | None, ...]] = [
    ("T1", "2025-01-20", "incoming", "100.00", "PLN", "ACME", "PL1", "FV/1"),
    ("T2", "2025-02-03", "incoming", "195.00", "PLN", "ACME", "PL1", "FV 2"),  # fee: settled
    ("T3", "2025-02-10", "incoming", "400.00", "PLN", "BETA", None, "part"),  # partial of I4
    ("T4", "2025-03-01", "incoming", "300.00", "PLN", "BETA", None, None),
]
MATCHES: list[tuple[str | None, ...]] = [
    ("T1", "I1", "100.00", "2025-01-21 10:00:00"),
    ("T2", "I2", "195.00", "2025-02-04 10:00:00"),
    ("T3", "I4", "400.00", "2025-02-11 09:00:00"),
    ("T4", "I3", "300.00", "2025-03-02 09:00:00"),
]
ROWS: dict[str, list[tuple[str | None, ...]]] = {
    "invoices": INVOICES,
    "transfers": TRANSFERS,
    "matches": MATCHES,
}


def _literal(value: str | None, kind: str) -> str:
    if value is None:
        return "NULL"
    return {
        "string": f"'{value}'",
        "decimal": f"NUMERIC '{value}'",
        "date": f"DATE '{value}'",
        "timestamp": f"TIMESTAMP '{value}'",
    }[kind]


@pytest.fixture
def make_dataset(bq_emulator):
    """Create a dataset with the contract tables (optionally one short), filled with ROWS."""
    client = bq_emulator.client()

    def make(*, skip_table=None, drop_column=None, extra=False) -> str:
        dataset = f"{bq_emulator.project}.w_{uuid.uuid4().hex[:12]}"
        client.create_dataset(dataset)
        for table in TABLES.values():
            if table.name == skip_table:
                continue
            schema = [f for f in bigquery_schema(table) if (table.name, f.name) != drop_column]
            from google.cloud import bigquery

            client.create_table(bigquery.Table(f"{dataset}.{table.name}", schema=schema))
            columns = [c for c in table.columns if (table.name, c.name) != drop_column]
            values = ", ".join(
                "("
                + ", ".join(_literal(row[table.columns.index(c)], c.kind) for c in columns)
                + ")"
                for row in ROWS[table.name]
            )
            names = ", ".join(c.name for c in columns)
            client.query(f"INSERT INTO `{dataset}.{table.name}` ({names}) VALUES {values}").result()
        if extra:
            client.query(f"ALTER TABLE `{dataset}.transfers` ADD COLUMN bank_ref STRING").result()
            client.query(f"CREATE TABLE `{dataset}.audit` (x INT64)").result()
        return dataset

    return make


def test_reads_months_and_open_invoices(make_dataset, bq_emulator):
    warehouse = BigQueryWarehouse(bq_emulator.client(), make_dataset())
    assert isinstance(warehouse, Warehouse)
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


CALLS: list[tuple[str, dict[str, bool]]] = [
    ("transfers", {}),
    ("open_invoices", {}),
    ("open_invoices", {"with_period_labels": False}),
    ("matches", {}),
]


def test_frames_equal_the_duckdb_adapters(make_dataset, bq_emulator, tmp_path):
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        for table in TABLES.values():
            con.execute(duckdb_ddl(table))
            marks = ", ".join("?" * len(table.columns))
            con.executemany(f"INSERT INTO {table.name} VALUES ({marks})", ROWS[table.name])
    duck = DuckDBWarehouse(path)
    big = BigQueryWarehouse(bq_emulator.client(), make_dataset())
    windows = [
        (dt.date(2025, 1, 1), dt.date(2025, 2, 1)),
        (dt.date(2025, 2, 1), dt.date(2025, 3, 1)),
        (dt.date(2025, 3, 1), dt.date(2025, 4, 1)),
        (dt.date(2024, 1, 1), dt.date(2024, 2, 1)),  # empty frames keep their columns and types
    ]
    for start, end in windows:
        for method, options in CALLS:
            expected = getattr(duck, method)(start, end, **options)
            got = getattr(big, method)(start, end, **options)
            where = f"{method}({start}, {end}, {options})"
            # DuckDB gives a text column without a value object dtype (and None for NULL);
            # BigQuery's frames keep the text dtype. Nothing downstream tells them apart.
            all_null = [
                c for c in expected if expected[c].dtype == object and expected[c].isna().all()
            ]
            assert got[all_null].isna().all().all(), where
            pd.testing.assert_frame_equal(
                got.drop(columns=all_null), expected.drop(columns=all_null), obj=where
            )


def test_missing_table_and_column_are_named(make_dataset, bq_emulator):
    client = bq_emulator.client()
    with pytest.raises(WarehouseSchemaError, match="missing table 'matches'"):
        BigQueryWarehouse(client, make_dataset(skip_table="matches")).check_schema()
    with pytest.raises(WarehouseSchemaError, match="'transfers' lacks column.*title"):
        BigQueryWarehouse(client, make_dataset(drop_column=("transfers", "title"))).check_schema()
    absent = BigQueryWarehouse(client, f"{bq_emulator.project}.absent")
    with pytest.raises(WarehouseSchemaError, match="does not exist"):
        absent.check_schema()
    with pytest.raises(WarehouseSchemaError, match="absent"):
        absent.transfers(dt.date(2025, 1, 1), dt.date(2025, 2, 1))
    with pytest.raises(WarehouseSchemaError, match="project.dataset"):
        BigQueryWarehouse(client, "just_a_dataset")


def test_extra_columns_and_tables_do_not_matter(make_dataset, bq_emulator):
    warehouse = BigQueryWarehouse(bq_emulator.client(), make_dataset(extra=True))
    warehouse.check_schema()
    assert "bank_ref" not in warehouse.transfers(dt.date(2025, 1, 1), dt.date(2025, 4, 1)).columns


def test_values_are_parameters_not_sql(make_dataset, bq_emulator):
    """Every value travels as a query parameter, never inside the SQL text."""
    client = bq_emulator.client()
    warehouse = BigQueryWarehouse(client, make_dataset())
    sent = []
    query = client.query

    def spy(sql, job_config=None, **kwargs):
        sent.append((sql, job_config))
        return query(sql, job_config=job_config, **kwargs)

    client.query = spy
    start, end = dt.date(2025, 2, 1), dt.date(2025, 3, 1)
    for method in ("transfers", "open_invoices", "matches"):
        getattr(warehouse, method)(start, end)
    assert len(sent) == 3
    for sql, config in sent:
        assert "2025" not in sql
        values = {p.name: p.value for p in config.query_parameters}
        assert (values["start"], values["end"]) == (start, end)
