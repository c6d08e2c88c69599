"""What only BigQueryWarehouse must show beyond the shared contract
(tests/integration/test_warehouse_contract.py): frame-for-frame equality with the DuckDB
adapter, values sent as query parameters, and a clear error for a malformed dataset name."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from cashmatch.adapters.gcp.warehouse import BigQueryWarehouse
from cashmatch.adapters.local.warehouse import DuckDBWarehouse
from cashmatch.ports import WarehouseSchemaError
from tests.fakes.warehouse_tables import bigquery_dataset, duckdb_file

pytestmark = pytest.mark.integration

CALLS: list[tuple[str, dict[str, bool]]] = [
    ("transfers", {}),
    ("open_invoices", {}),
    ("open_invoices", {"with_period_labels": False}),
    ("matches", {}),
]


def test_frames_equal_the_duckdb_adapters(bq_emulator, tmp_path):
    duck = DuckDBWarehouse(duckdb_file(tmp_path / "w.duckdb"))
    client = bq_emulator.client()
    big = BigQueryWarehouse(client, bigquery_dataset(client, bq_emulator.project))
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


def test_an_absent_dataset_and_a_malformed_name_are_named(bq_emulator):
    client = bq_emulator.client()
    absent = BigQueryWarehouse(client, f"{bq_emulator.project}.absent")
    with pytest.raises(WarehouseSchemaError, match="absent"):
        absent.transfers(dt.date(2025, 1, 1), dt.date(2025, 2, 1))
    with pytest.raises(WarehouseSchemaError, match="project.dataset"):
        BigQueryWarehouse(client, "just_a_dataset")


def test_values_are_parameters_not_sql(bq_emulator):
    """Every value travels as a query parameter, never inside the SQL text."""
    client = bq_emulator.client()
    warehouse = BigQueryWarehouse(client, bigquery_dataset(client, bq_emulator.project))
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
