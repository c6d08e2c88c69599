"""A tiny month-spanning data set in the warehouse contract's tables, as plain text values, and
builders that load it into DuckDB or BigQuery, so every Warehouse adapter's test reads exactly
the same rows."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb

from cashmatch.domain.contract import TABLES, duckdb_ddl

Row = tuple[str | None, ...]

# fmt: off
INVOICES: list[Row] = [
    ("I1", "FV/1", "receivable", "C1", "Acme", "123", "PL1", "PLN", "100.00", "2025-01-10", "2025-01-24"),
    ("I2", "FV/2", "receivable", "C1", "Acme", "123", "PL1", "PLN", "200.00", "2025-01-15", "2025-01-29"),
    ("I3", "FV/3", "receivable", "C2", "Beta", None, None, "PLN", "300.00", "2025-02-20", "2025-03-06"),
    ("I4", "FV/4", "receivable", "C2", "Beta", None, None, "PLN", "1000.00", "2025-01-05", "2025-03-06"),
    ("I5", "FV/5", "receivable", "C2", "Beta", None, None, "PLN", "50.00", "2025-03-05", "2025-03-06"),
]
TRANSFERS: list[Row] = [
    ("T1", "2025-01-20", "incoming", "100.00", "PLN", "ACME", "PL1", "FV/1"),
    ("T2", "2025-02-03", "incoming", "195.00", "PLN", "ACME", "PL1", "FV 2"),  # fee: settled
    ("T3", "2025-02-10", "incoming", "400.00", "PLN", "BETA", None, "part"),  # partial of I4
    ("T4", "2025-03-01", "incoming", "300.00", "PLN", "BETA", None, None),
]
MATCHES: list[Row] = [
    ("T1", "I1", "100.00", "2025-01-21 10:00:00"),
    ("T2", "I2", "195.00", "2025-02-04 10:00:00"),
    ("T3", "I4", "400.00", "2025-02-11 09:00:00"),
    ("T4", "I3", "300.00", "2025-03-02 09:00:00"),
]
# A label of a transfer the warehouse does not hold: it belongs to no month.
STRAY_LABEL: Row = ("T9", "I1", "100.00", "2025-01-21 10:00:00")
# fmt: on
ROWS: dict[str, list[Row]] = {"invoices": INVOICES, "transfers": TRANSFERS, "matches": MATCHES}


def _rows(table: str, stray_label: bool) -> list[Row]:
    return ROWS[table] + ([STRAY_LABEL] if stray_label and table == "matches" else [])


def duckdb_file(
    path: Path, *, skip_table=None, drop_column=None, as_text=None, stray_label=False, extra=False
) -> Path:
    """A DuckDB file with the contract tables (optionally one short, or with the column
    `as_text` = (table, column) stored as text) holding ROWS."""
    with duckdb.connect(str(path)) as con:
        for table in TABLES.values():
            if table.name == skip_table:
                continue
            con.execute(duckdb_ddl(table))
            marks = ", ".join("?" * len(table.columns))
            con.executemany(
                f"INSERT INTO {table.name} VALUES ({marks})", _rows(table.name, stray_label)
            )
            if drop_column and drop_column[0] == table.name:
                con.execute(f"ALTER TABLE {table.name} DROP COLUMN {drop_column[1]}")
            if as_text and as_text[0] == table.name:
                con.execute(f"ALTER TABLE {table.name} ALTER {as_text[1]} TYPE VARCHAR")
        if extra:
            con.execute("ALTER TABLE transfers ADD COLUMN bank_ref VARCHAR")
            con.execute("CREATE TABLE audit (x INT)")
    return path


def _literal(value: str | None, kind: str) -> str:
    if value is None:
        return "NULL"
    return {
        "string": f"'{value}'",
        "decimal": f"NUMERIC '{value}'",
        "date": f"DATE '{value}'",
        "timestamp": f"TIMESTAMP '{value}'",
    }[kind]


def bigquery_dataset(
    client: Any,
    project: str,
    *,
    skip_table=None,
    drop_column=None,
    as_text=None,
    stray_label=False,
    extra=False,
):
    """A fresh dataset with the contract tables (optionally one short, or with the column
    `as_text` = (table, column) stored as text) holding ROWS."""
    from google.cloud import bigquery

    from cashmatch.adapters.gcp.warehouse import bigquery_schema

    dataset = f"{project}.w_{uuid.uuid4().hex[:12]}"
    client.create_dataset(dataset)
    for table in TABLES.values():
        if table.name == skip_table:
            continue
        columns = [
            replace(c, kind="string") if (table.name, c.name) == as_text else c
            for c in table.columns
            if (table.name, c.name) != drop_column
        ]
        schema = bigquery_schema(replace(table, columns=tuple(columns)))
        client.create_table(bigquery.Table(f"{dataset}.{table.name}", schema=schema))
        values = ", ".join(
            "("
            + ", ".join(_literal(row[table.column_names.index(c.name)], c.kind) for c in columns)
            + ")"
            for row in _rows(table.name, stray_label)
        )
        names = ", ".join(c.name for c in columns)
        client.query(f"INSERT INTO `{dataset}.{table.name}` ({names}) VALUES {values}").result()
    if extra:
        client.query(f"ALTER TABLE `{dataset}.transfers` ADD COLUMN bank_ref STRING").result()
        client.query(f"CREATE TABLE `{dataset}.audit` (x INT64)").result()
    return dataset
