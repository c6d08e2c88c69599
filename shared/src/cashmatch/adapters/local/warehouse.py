"""Warehouse on a DuckDB file holding the contract tables (any such file works)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd

from cashmatch.domain.contract import (
    INVOICES,
    MATCHES,
    SETTLED_FRACTION,
    TRANSFERS,
    Table,
    schema_problems,
    unplaced_rows_sql,
)
from cashmatch.ports import WarehouseSchemaError


def _select(table: Table, alias: str) -> str:
    parts = []
    for column in table.columns:
        ref = f"{alias}.{column.name}"
        parts.append(f"CAST({ref} AS DOUBLE) AS {column.name}" if column.kind == "decimal" else ref)
    return ", ".join(parts)


class DuckDBWarehouse:
    """Reads the contract tables from a DuckDB file, read-only, with parameterized SQL."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if not self.path.is_file():
            raise WarehouseSchemaError(f"warehouse file {self.path} does not exist")
        try:
            return duckdb.connect(str(self.path), read_only=True)
        except duckdb.Error as exc:
            raise WarehouseSchemaError(f"warehouse {self.path} cannot be opened: {exc}") from None

    def _query(self, sql: str, params: list[object]) -> pd.DataFrame:
        with self._connect() as con:
            try:
                return con.execute(sql, params).df()
            except duckdb.ConversionException as exc:
                # A value the contract's types cannot carry (a date of 'infinity'): reading
                # again gives the same error, so say it once and let the event be parked.
                raise WarehouseSchemaError(
                    f"warehouse {self.path} holds a value that cannot be read: {exc}"
                ) from None

    def check_schema(self) -> None:
        """Raise WarehouseSchemaError naming every missing table or column and every column of
        a type the contract does not take."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema()"
            ).fetchall()
        present: dict[str, dict[str, str]] = {}
        for table_name, column_name, data_type in rows:
            present.setdefault(table_name.lower(), {})[column_name] = data_type
        problems = schema_problems(present)
        if problems:
            raise WarehouseSchemaError(f"warehouse {self.path}: " + "; ".join(problems))

    def month_bounds(self) -> tuple[str, str] | None:
        """First and last month with transfers."""
        with self._connect() as con:
            low, high = con.execute(
                "SELECT min(booking_date), max(booking_date) FROM transfers"
            ).fetchone() or (None, None)
        if low is None or high is None:
            return None
        return low.strftime("%Y-%m"), high.strftime("%Y-%m")

    def transfers(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Transfers booked in [start, end)."""
        sql = (
            f"SELECT {_select(TRANSFERS, 't')} FROM transfers t "
            "WHERE t.booking_date >= ? AND t.booking_date < ? "
            "ORDER BY t.booking_date, t.transfer_id"
        )
        return _dates(self._query(sql, [start, end]), ("booking_date",))

    def open_invoices(
        self, start: dt.date, end: dt.date, *, with_period_labels: bool = True
    ) -> pd.DataFrame:
        """Invoices issued before `end` and not settled by transfers booked before `start`.

        `with_period_labels=False` leaves out what only this period's labels reveal (a remainder
        written off as settled but paid again in the period): for predicting unlabelled months.
        """
        # Only contract column names are interpolated; every value is a parameter.
        sql = f"""
            WITH paid AS (
                SELECT m.invoice_id, SUM(CAST(m.amount AS DOUBLE)) AS paid
                FROM matches m JOIN transfers t ON t.transfer_id = m.transfer_id
                WHERE t.booking_date < ?
                GROUP BY m.invoice_id
            )
            SELECT {_select(INVOICES, "i")},
                   CAST(i.amount AS DOUBLE) - COALESCE(p.paid, 0) AS open_amount
            FROM invoices i LEFT JOIN paid p ON p.invoice_id = i.invoice_id
            WHERE i.issue_date < ?
              AND (abs(CAST(i.amount AS DOUBLE) - COALESCE(p.paid, 0))
                   > ? * abs(CAST(i.amount AS DOUBLE)) + 0.005
                   -- a missing, infinite or NaN amount goes on to be quarantined
                   OR i.amount IS NULL OR NOT isfinite(CAST(i.amount AS DOUBLE))
                   -- a remainder written off as settled may still be paid later
                   OR i.invoice_id IN (
                       SELECT m.invoice_id FROM matches m
                       JOIN transfers t ON t.transfer_id = m.transfer_id
                       WHERE t.booking_date >= ? AND t.booking_date < ?))
            ORDER BY i.issue_date, i.invoice_id
        """
        # An empty period in the label clause turns it off without a second query text.
        label_end = end if with_period_labels else start
        frame = self._query(sql, [start, end, SETTLED_FRACTION, start, label_end])
        frame["open_amount"] = frame["open_amount"].round(2)
        return _dates(frame, ("issue_date", "due_date"))

    def matches(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Labels of the transfers booked in [start, end)."""
        sql = (
            f"SELECT {_select(MATCHES, 'm')} FROM matches m "
            "JOIN transfers t ON t.transfer_id = m.transfer_id "
            "WHERE t.booking_date >= ? AND t.booking_date < ? ORDER BY m.transfer_id, m.invoice_id"
        )
        return _dates(self._query(sql, [start, end]), ("matched_at",))

    def unplaced(self) -> pd.DataFrame:
        """Rows no month can hold (table, key, reason)."""
        # DuckDB quotes a name with double quotes where BigQuery takes backticks.
        sql = unplaced_rows_sql("transfers", "invoices", "matches").replace("`", '"')
        return self._query(sql, [])


def _dates(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    for column in columns:
        frame[column] = pd.to_datetime(frame[column])
    for column in frame.columns:
        if column.endswith("amount"):
            frame[column] = frame[column].astype("float64").round(2)
    return frame
