"""Warehouse on a BigQuery dataset holding the contract tables (google-cloud-bigquery).

Mirrors DuckDBWarehouse: the same SQL shape, the same settled-remainder rule and the same frames
(contract columns in contract order, amounts float64 rounded to cents, dates and timestamps as
naive datetime64[us], strings as pandas' string dtype). Every value is a query parameter; only
contract table and column names are interpolated.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pandas as pd
from google.api_core import exceptions as gexc
from google.cloud.bigquery import QueryJobConfig, ScalarQueryParameter, SchemaField

from cashmatch.domain.contract import (
    INVOICES,
    MATCHES,
    SETTLED_FRACTION,
    TABLES,
    TRANSFERS,
    Table,
    schema_problems,
    unplaced_rows_sql,
)
from cashmatch.ports import WarehouseSchemaError

if TYPE_CHECKING:
    from google.cloud.bigquery import Client

# The dtype pandas gives text by default (its string dtype from pandas 3, object before), which
# is what the DuckDB adapter's frames carry.
_TEXT_DTYPE = pd.Series(["text"]).dtype


# The contract's types in BigQuery (docs/DESIGN.md: amounts are NUMERIC there).
BIGQUERY_TYPES = {
    "string": "STRING",
    "decimal": "NUMERIC",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}


def bigquery_schema(table: Table) -> list[SchemaField]:
    """The BigQuery schema of a contract table, for whoever creates or loads it."""
    return [
        SchemaField(c.name, BIGQUERY_TYPES[c.kind], mode="NULLABLE" if c.nullable else "REQUIRED")
        for c in table.columns
    ]


def _select(table: Table, alias: str) -> str:
    # NUMERIC becomes FLOAT64 in SQL, as DECIMAL becomes DOUBLE in the DuckDB adapter.
    parts = []
    for column in table.columns:
        ref = f"{alias}.{column.name}"
        parts.append(
            f"CAST({ref} AS FLOAT64) AS {column.name}" if column.kind == "decimal" else ref
        )
    return ", ".join(parts)


class BigQueryWarehouse:
    """Reads the contract tables of `dataset` ("project.dataset") with parameterized queries.

    `use_storage_api` is passed to `to_arrow(create_bqstorage_client=...)`: the monthly
    frames are small, so the REST path is the default; the Storage Read API needs the
    google-cloud-bigquery-storage package and its own permission, and emulators lack it.
    """

    def __init__(
        self,
        client: Client,
        dataset: str,
        *,
        use_storage_api: bool = False,
        timeout_s: float = 300.0,
    ) -> None:
        project, sep, name = dataset.partition(".")
        if not sep or not project or not name or "." in name:
            raise WarehouseSchemaError(
                f"warehouse {dataset!r} must be 'project.dataset' on the gcp stack"
            )
        self.client = client
        self.dataset = dataset
        self.use_storage_api = use_storage_api
        self.timeout_s = timeout_s

    def _table(self, name: str) -> str:
        return f"`{self.dataset}.{name}`"

    def _query(self, sql: str, params: list[ScalarQueryParameter]) -> pd.DataFrame:
        config = QueryJobConfig(query_parameters=params)
        try:
            job = self.client.query(sql, job_config=config, timeout=self.timeout_s)
            # Through Arrow rather than to_dataframe(), which the client deprecates in favour of
            # pandas-gbq; _normalize gives the frames their dtypes either way.
            table = job.result(timeout=self.timeout_s).to_arrow(
                create_bqstorage_client=self.use_storage_api
            )
            return table.to_pandas()
        except gexc.NotFound as exc:
            # A missing dataset or table never heals by retrying: say which, permanently.
            raise WarehouseSchemaError(f"warehouse {self.dataset}: {exc.message}") from None

    def check_schema(self) -> None:
        """Raise WarehouseSchemaError naming every missing table or column and every column of
        a type the contract does not take."""
        try:
            self.client.get_dataset(self.dataset, timeout=self.timeout_s)
        except gexc.NotFound:
            raise WarehouseSchemaError(f"warehouse dataset {self.dataset} does not exist") from None
        present: dict[str, dict[str, str]] = {}
        for table in TABLES.values():
            try:
                schema = self.client.get_table(
                    f"{self.dataset}.{table.name}", timeout=self.timeout_s
                ).schema
            except gexc.NotFound:
                continue
            present[table.name] = {field.name: field.field_type for field in schema}
        problems = schema_problems(present)
        if problems:
            raise WarehouseSchemaError(f"warehouse {self.dataset}: " + "; ".join(problems))

    def month_bounds(self) -> tuple[str, str] | None:
        """First and last month with transfers."""
        sql = (
            "SELECT MIN(booking_date) AS low, MAX(booking_date) AS high "
            f"FROM {self._table('transfers')}"
        )
        frame = self._query(sql, [])
        low: Any = frame.at[0, "low"]
        high: Any = frame.at[0, "high"]
        if pd.isna(low) or pd.isna(high):
            return None
        return pd.Timestamp(low).strftime("%Y-%m"), pd.Timestamp(high).strftime("%Y-%m")

    def transfers(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Transfers booked in [start, end)."""
        sql = (
            f"SELECT {_select(TRANSFERS, 't')} FROM {self._table('transfers')} t "
            "WHERE t.booking_date >= @start AND t.booking_date < @end "
            "ORDER BY t.booking_date, t.transfer_id"
        )
        return _normalize(self._query(sql, _window(start, end)), TRANSFERS)

    def open_invoices(
        self, start: dt.date, end: dt.date, *, with_period_labels: bool = True
    ) -> pd.DataFrame:
        """Invoices issued before `end` and not settled by transfers booked before `start`.

        `with_period_labels=False` leaves out what only this period's labels reveal (a remainder
        written off as settled but paid again in the period): for predicting unlabelled months.
        """
        matches, transfers = self._table("matches"), self._table("transfers")
        sql = f"""
            WITH paid AS (
                SELECT m.invoice_id, SUM(CAST(m.amount AS FLOAT64)) AS paid
                FROM {matches} m JOIN {transfers} t ON t.transfer_id = m.transfer_id
                WHERE t.booking_date < @start
                GROUP BY m.invoice_id
            )
            SELECT {_select(INVOICES, "i")},
                   CAST(i.amount AS FLOAT64) - COALESCE(p.paid, 0) AS open_amount
            FROM {self._table("invoices")} i LEFT JOIN paid p ON p.invoice_id = i.invoice_id
            WHERE i.issue_date < @end
              AND (ABS(CAST(i.amount AS FLOAT64) - COALESCE(p.paid, 0))
                   > @settled_fraction * ABS(CAST(i.amount AS FLOAT64)) + 0.005
                   -- a missing, infinite or NaN amount goes on to be quarantined
                   OR i.amount IS NULL OR IS_INF(CAST(i.amount AS FLOAT64))
                   OR IS_NAN(CAST(i.amount AS FLOAT64))
                   -- a remainder written off as settled may still be paid later
                   OR i.invoice_id IN (
                       SELECT m.invoice_id FROM {matches} m
                       JOIN {transfers} t ON t.transfer_id = m.transfer_id
                       WHERE t.booking_date >= @start AND t.booking_date < @label_end))
            ORDER BY i.issue_date, i.invoice_id
        """
        params = [
            *_window(start, end),
            ScalarQueryParameter("settled_fraction", "FLOAT64", SETTLED_FRACTION),
            # An empty period in the label clause turns it off without a second query text.
            ScalarQueryParameter("label_end", "DATE", end if with_period_labels else start),
        ]
        frame = _normalize(self._query(sql, params), INVOICES, extra=("open_amount",))
        return frame

    def matches(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Labels of the transfers booked in [start, end)."""
        sql = (
            f"SELECT {_select(MATCHES, 'm')} FROM {self._table('matches')} m "
            f"JOIN {self._table('transfers')} t ON t.transfer_id = m.transfer_id "
            "WHERE t.booking_date >= @start AND t.booking_date < @end "
            "ORDER BY m.transfer_id, m.invoice_id"
        )
        return _normalize(self._query(sql, _window(start, end)), MATCHES)

    def unplaced(self) -> pd.DataFrame:
        """Rows no month can hold (table, key, reason)."""
        tables = (self._table(name) for name in ("transfers", "invoices", "matches"))
        return self._query(unplaced_rows_sql(*tables), [])


def _window(start: dt.date, end: dt.date) -> list[ScalarQueryParameter]:
    return [
        ScalarQueryParameter("start", "DATE", start),
        ScalarQueryParameter("end", "DATE", end),
    ]


def _normalize(frame: pd.DataFrame, table: Table, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """The DuckDB adapter's dtypes, whatever BigQuery's client chose (dbdate, tz-aware UTC)."""
    out: dict[str, Any] = {}
    for column in table.columns:
        series = frame[column.name] if column.name in frame else pd.Series([], dtype=object)
        if column.kind == "decimal":
            out[column.name] = series.astype("float64").round(2)
        elif column.kind in ("date", "timestamp"):
            out[column.name] = _naive_datetimes(series)
        else:
            out[column.name] = series.astype("object").astype(_TEXT_DTYPE)
    for name in extra:
        out[name] = frame[name].astype("float64").round(2)
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame)))


def _naive_datetimes(series: pd.Series) -> pd.Series:
    # BigQuery DATE arrives as db-dtypes' dbdate and TIMESTAMP as tz-aware UTC; the contract's
    # frames carry naive datetimes (TIMESTAMP values are UTC), as DuckDB returns them.
    values = pd.to_datetime(series.astype("object"), utc=True)
    return values.dt.tz_convert(None).astype("datetime64[us]")
