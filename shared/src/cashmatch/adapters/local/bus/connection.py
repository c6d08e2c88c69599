"""Connections to the local bus's SQLite file: their settings, explicit transactions, and the
switch to WAL mode."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def connect(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """A connection with durable commits, foreign keys on, and no implicit transactions."""
    # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves; `timeout` is the
    # busy timeout, how long a writer waits for another process's transaction to finish.
    conn = sqlite3.connect(
        path,
        timeout=busy_timeout_s,
        isolation_level=None,
        check_same_thread=False,
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    # FULL: a committed publish or ack survives a power cut, not only a crashed process.
    conn.execute("PRAGMA synchronous = FULL")
    return conn


@contextmanager
def begin(conn: sqlite3.Connection, mode: str) -> Iterator[sqlite3.Connection]:
    """One transaction (`mode`: DEFERRED or IMMEDIATE), committed or rolled back as a whole."""
    conn.execute(f"BEGIN {mode}")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def enable_wal(conn: sqlite3.Connection, path: Path, busy_timeout_s: float) -> None:
    """Put the file in WAL mode, so readers never block the writer; RuntimeError if it won't."""
    # Switching a fresh file to WAL needs an exclusive lock; two processes opening it at
    # once can see "database is locked" here even with a busy timeout, so retry.
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    if str(mode).lower() != "wal":
        raise RuntimeError(
            f"{path} could not be switched to WAL mode (got {mode!r}); "
            "a network filesystem does not support it"
        )
