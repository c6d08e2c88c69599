"""The data contract with the finance system: tables, columns and their types.

One place that names every column, so the simulator, the warehouse adapters, the collector's
validation and the matcher agree on the same schema (see docs/DESIGN.md, "Data contract").
"""

from __future__ import annotations

from dataclasses import dataclass

INCOMING = "incoming"
OUTGOING = "outgoing"
RECEIVABLE = "receivable"
PAYABLE = "payable"

# A transfer's direction decides which invoices it can pay.
INVOICE_DIRECTION_FOR = {INCOMING: RECEIVABLE, OUTGOING: PAYABLE}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "string" | "decimal" | "date" | "timestamp"
    nullable: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


INVOICES = Table(
    "invoices",
    ("invoice_id",),
    (
        Column("invoice_id", "string"),
        Column("invoice_number", "string"),
        Column("direction", "string"),
        Column("counterparty_id", "string"),
        Column("counterparty_name", "string"),
        Column("counterparty_tax_id", "string", nullable=True),
        Column("counterparty_iban", "string", nullable=True),
        Column("currency", "string"),
        Column("amount", "decimal"),
        Column("issue_date", "date"),
        Column("due_date", "date"),
    ),
)

TRANSFERS = Table(
    "transfers",
    ("transfer_id",),
    (
        Column("transfer_id", "string"),
        Column("booking_date", "date"),
        Column("direction", "string"),
        Column("amount", "decimal"),
        Column("currency", "string"),
        Column("counterparty_name", "string", nullable=True),
        Column("counterparty_iban", "string", nullable=True),
        Column("title", "string", nullable=True),
    ),
)

MATCHES = Table(
    "matches",
    ("transfer_id", "invoice_id"),
    (
        Column("transfer_id", "string"),
        Column("invoice_id", "string"),
        Column("amount", "decimal"),
        Column("matched_at", "timestamp"),
    ),
)

TABLES: dict[str, Table] = {t.name: t for t in (INVOICES, TRANSFERS, MATCHES)}

# The largest amount taken anywhere (rows, API requests): beyond it the features overflow. A
# warehouse that stores amounts as floats can also hold an infinity, which DECIMAL cannot.
MAX_AMOUNT = 1e12

# The column types a warehouse may use for each kind, as DuckDB and BigQuery name them (without
# parameters). Amounts may be any number; a date must be a DATE, since months are cut by it.
ACCEPTED_TYPES: dict[str, frozenset[str]] = {
    "string": frozenset({"VARCHAR", "STRING", "TEXT", "ENUM"}),
    "decimal": frozenset(
        {"DECIMAL", "NUMERIC", "BIGNUMERIC", "DOUBLE", "FLOAT", "FLOAT64", "REAL"}
        | {"INTEGER", "INT64", "BIGINT", "HUGEINT"}
    ),
    "date": frozenset({"DATE"}),
    "timestamp": frozenset(
        {"TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "DATETIME", "DATE"}
        | {"TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"}
    ),
}


def schema_problems(present: dict[str, dict[str, str]]) -> list[str]:
    """What a warehouse lacks or holds in the wrong type, in words, given {table: {column:
    type name}} as its catalogue reports them; empty when it meets the contract."""
    problems = []
    for table in TABLES.values():
        columns = {c.lower(): t for c, t in present.get(table.name, {}).items()}
        if not columns:
            problems.append(f"missing table {table.name!r}")
            continue
        missing = [c for c in table.column_names if c not in columns]
        if missing:
            problems.append(f"table {table.name!r} lacks column(s) {', '.join(missing)}")
        for column in table.columns:
            found = columns.get(column.name)
            if found is None:
                continue
            type_name = found.split("(")[0].strip().upper()  # DECIMAL(18,2) is a DECIMAL
            if type_name not in ACCEPTED_TYPES[column.kind]:
                problems.append(
                    f"column {table.name}.{column.name} is {found}, the contract wants a "
                    f"{column.kind} ({DUCKDB_TYPES[column.kind]})"
                )
    return problems


DUCKDB_TYPES = {
    "string": "VARCHAR",
    "decimal": "DECIMAL(18,2)",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}


def duckdb_ddl(table: Table) -> str:
    """CREATE TABLE statement for one contract table in DuckDB."""
    cols = ", ".join(
        f"{c.name} {DUCKDB_TYPES[c.kind]}{'' if c.nullable else ' NOT NULL'}" for c in table.columns
    )
    return f"CREATE TABLE {table.name} ({cols})"


def unplaced_rows_sql(transfers: str, invoices: str, matches: str) -> str:
    """Rows no month can hold, as (table, key, reason), in SQL DuckDB and BigQuery both run:
    a month's queries cut by booking and issue dates and join labels to transfers, so without
    this these rows would vanish instead of being reported. Arguments are table references."""
    label_key = "CONCAT(COALESCE(m.transfer_id, ''), '/', COALESCE(m.invoice_id, ''))"
    # Only the adapters' own table references are interpolated; there are no values.
    return f"""
        SELECT 'transfers' AS `table`, transfer_id AS key,
               'booking_date is null: the transfer belongs to no month' AS reason
        FROM {transfers} WHERE booking_date IS NULL
        UNION ALL
        SELECT 'invoices', invoice_id, 'issue_date is null: the invoice is open in no month'
        FROM {invoices} WHERE issue_date IS NULL
        UNION ALL
        SELECT 'matches', {label_key},
               CASE WHEN m.transfer_id IS NULL THEN 'transfer_id is null'
                    WHEN t.transfer_id IS NULL THEN 'unknown transfer'
                    ELSE 'its transfer has no booking_date' END
        FROM {matches} m LEFT JOIN {transfers} t ON t.transfer_id = m.transfer_id
        WHERE t.transfer_id IS NULL OR t.booking_date IS NULL
        ORDER BY 1, 2
    """  # noqa: S608


# An invoice whose remainder is within what fees and discounts take off is settled: the
# finance team writes such remainders off instead of waiting for them.
SETTLED_FRACTION = 0.035
