"""Write simulated data as a DuckDB warehouse file with the contract tables."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import duckdb

from cashmatch.domain import contract
from cashmatch.synth.frames import SyntheticData

_CASTS = {
    "string": "CAST({c} AS VARCHAR)",
    "decimal": "CAST(ROUND({c}, 2) AS DECIMAL(18,2))",
    "date": "CAST({c} AS DATE)",
    "timestamp": "CAST({c} AS TIMESTAMP)",
}


def write_warehouse(data: SyntheticData, path: Path) -> None:
    """Write the three contract tables to a DuckDB file at `path`, replacing it atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a temp file in the same folder, so that os.replace is an atomic rename
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        con = duckdb.connect(str(tmp))
        try:
            for table, frame in (
                (contract.INVOICES, data.invoices),
                (contract.TRANSFERS, data.transfers),
                (contract.MATCHES, data.matches),
            ):
                _write_table(con, table, frame)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        # a write-ahead log left by the old file would be replayed onto the new one
        _remove(Path(f"{path}.wal"))
        os.replace(tmp, path)
    finally:
        _remove(tmp)
        _remove(Path(f"{tmp}.wal"))


def _write_table(con: duckdb.DuckDBPyConnection, table: contract.Table, frame: object) -> None:
    con.execute(contract.duckdb_ddl(table))
    con.register("synth_frame", frame)
    try:
        select = ", ".join(_CASTS[c.kind].format(c=c.name) for c in table.columns)
        # names come from the contract, not from input: no injection to guard against
        con.execute(f"INSERT INTO {table.name} SELECT {select} FROM synth_frame")  # noqa: S608
    finally:
        con.unregister("synth_frame")


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
