"""The local bus's tables (subscriptions, messages, deliveries, attempts), how they are created
or checked on opening, and the text form of the times stored in them."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path

from cashmatch.adapters.local.bus.connection import begin, connect, enable_wal

logger = logging.getLogger(__name__)

_SCHEMA_VERSION = 1
_SCHEMA = (
    # Subscriptions live in the file, not only in the constructor's dict: a publisher fans out to
    # every subscription any process has registered, as with Pub/Sub's persistent subscriptions.
    """CREATE TABLE IF NOT EXISTS subscriptions (
        name  TEXT PRIMARY KEY,
        topic TEXT NOT NULL
    )""",
    # AUTOINCREMENT: `seq` is the publish order and must never be reused.
    """CREATE TABLE IF NOT EXISTS messages (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id   TEXT NOT NULL UNIQUE,
        topic        TEXT NOT NULL,
        data         BLOB NOT NULL,
        attributes   TEXT NOT NULL,
        published_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS messages_by_topic ON messages (topic, seq)",
    # For a leased delivery `next_attempt_at` is when its lease expires, so "due" is one range
    # condition over the (subscription, state, next_attempt_at) index for every state.
    """CREATE TABLE IF NOT EXISTS deliveries (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        seq             INTEGER NOT NULL REFERENCES messages (seq),
        subscription    TEXT NOT NULL,
        state           TEXT NOT NULL
                        CHECK (state IN ('pending', 'leased', 'retrying', 'done', 'dead')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        lease_token     TEXT,
        detail          TEXT NOT NULL DEFAULT '',
        updated_at      TEXT NOT NULL,
        UNIQUE (seq, subscription)
    )""",
    "CREATE INDEX IF NOT EXISTS deliveries_due"
    " ON deliveries (subscription, state, next_attempt_at)",
    """CREATE TABLE IF NOT EXISTS attempts (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id INTEGER NOT NULL REFERENCES deliveries (id),
        attempt     INTEGER NOT NULL,
        outcome     TEXT NOT NULL,
        detail      TEXT NOT NULL,
        at          TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS attempts_by_delivery ON attempts (delivery_id, id)",
)

# Fixed width and always UTC, so the stored strings sort (and compare in SQL) like the times.
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def to_text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime(_TIME_FORMAT)


def from_text(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=dt.UTC)


def create_schema(path: Path, subscriptions: Mapping[str, str], busy_timeout_s: float) -> None:
    """Create the file and its tables if absent, refuse a newer schema, register `subscriptions`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(connect(path, busy_timeout_s)) as conn:
        enable_wal(conn, path, busy_timeout_s)
        with begin(conn, "IMMEDIATE"):
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise RuntimeError(
                    f"{path} has bus schema {version}; this code knows up to {_SCHEMA_VERSION}"
                )
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute("PRAGMA user_version = 1")
            _register_subscriptions(conn, subscriptions)


def _register_subscriptions(conn: sqlite3.Connection, subscriptions: Mapping[str, str]) -> None:
    for name, topic in subscriptions.items():
        row = conn.execute("SELECT topic FROM subscriptions WHERE name = ?", (name,)).fetchone()
        if row is None:
            conn.execute("INSERT INTO subscriptions (name, topic) VALUES (?, ?)", (name, topic))
        elif row["topic"] != topic:
            logger.warning(
                "subscription %s moves from topic %s to %s; new messages of %s follow it",
                name,
                row["topic"],
                topic,
                topic,
            )
            conn.execute("UPDATE subscriptions SET topic = ? WHERE name = ?", (topic, name))
