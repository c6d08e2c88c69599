"""EventBus on an SQLite file: the local stack's durable, at-least-once stand-in for Pub/Sub.

One file in the workspace holds the messages, one delivery per (message, subscription) and the
outcome of every attempt. Several processes may share it: every state change is a single
`BEGIN IMMEDIATE` transaction, so two workers never lease the same delivery and a crash leaves
nothing half-written. Callers poll `pull`; there is no push and no wake-up signal.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from cashmatch.ports import BusRecord, Delivery, RetryPolicy

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

_OPEN_STATES = ("pending", "leased", "retrying")
# Fixed width and always UTC, so the stored strings sort (and compare in SQL) like the times.
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _to_text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime(_TIME_FORMAT)


def _from_text(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=dt.UTC)


class SqliteEventBus:
    """Topics and subscriptions with at-least-once delivery, kept in one SQLite file (WAL mode).

    `subscriptions` maps a subscription name to its topic; they are registered in the file, and
    a publish fans out to every subscription of the topic that any process has registered.
    """

    def __init__(
        self,
        path: Path,
        subscriptions: Mapping[str, str],
        retry: RetryPolicy = RetryPolicy(),  # frozen, so one shared default is safe
        clock: Callable[[], dt.datetime] = _utc_now,
        *,
        busy_timeout_s: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.retry = retry
        self._subscriptions = dict(subscriptions)
        self._clock = clock
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        # Opened on first use, so a bus built before a fork is still usable in the child.
        self._conn: sqlite3.Connection | None = None
        self._conn_pid = 0
        self._create_schema()

    # -- connection and transactions --------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves; `timeout` is the
        # busy timeout, how long a writer waits for another process's transaction to finish.
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        # FULL: a committed publish or ack survives a power cut, not only a crashed process.
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._conn_pid != os.getpid():
            # An SQLite connection must not cross a fork: its locks belong to the parent.
            raise RuntimeError(
                "this SqliteEventBus was used before the process forked; build one per process"
            )
        if self._conn is None:
            self._conn = self._connect()
            self._conn_pid = os.getpid()
        return self._conn

    @staticmethod
    @contextmanager
    def _begin(conn: sqlite3.Connection, mode: str) -> Iterator[sqlite3.Connection]:
        conn.execute(f"BEGIN {mode}")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so a read-then-update (a lease) cannot race
        # another process, and waits on the busy timeout instead of failing mid-transaction.
        with self._lock, self._begin(self._connection(), "IMMEDIATE") as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        # A deferred transaction gives several SELECTs one snapshot; WAL readers never block.
        with self._lock, self._begin(self._connection(), "DEFERRED") as conn:
            yield conn

    def close(self) -> None:
        """Close this process's connection; a later call opens a new one."""
        with self._lock:
            if self._conn is not None and self._conn_pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> SqliteEventBus:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteEventBus({str(self.path)!r})"

    def _create_schema(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as conn:
            self._enable_wal(conn)
            with self._begin(conn, "IMMEDIATE"):
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > _SCHEMA_VERSION:
                    raise RuntimeError(
                        f"{self.path} has bus schema {version}; this code knows up to "
                        f"{_SCHEMA_VERSION}"
                    )
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute("PRAGMA user_version = 1")
                self._register_subscriptions(conn)

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        # Switching a fresh file to WAL needs an exclusive lock; two processes opening it at
        # once can see "database is locked" here even with a busy timeout, so retry.
        deadline = time.monotonic() + self._busy_timeout_s
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
                f"{self.path} could not be switched to WAL mode (got {mode!r}); "
                "a network filesystem does not support it"
            )

    def _register_subscriptions(self, conn: sqlite3.Connection) -> None:
        for name, topic in self._subscriptions.items():
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

    def _now(self) -> dt.datetime:
        moment = self._clock()
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("the bus clock must return timezone-aware datetimes")
        return moment

    # -- EventBus ----------------------------------------------------------------------------

    def publish(
        self, topic: str, data: bytes, attributes: dict[str, str], *, message_id: str
    ) -> bool:
        """Store the message and a pending delivery per subscription of `topic`, atomically.

        A second publish with the same `message_id` changes nothing and returns False.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()):
            raise TypeError("attribute keys and values must be strings (as in Pub/Sub)")
        at = _to_text(self._now())
        attributes_json = json.dumps(attributes, sort_keys=True)
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO messages (message_id, topic, data, attributes, published_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING",
                (message_id, topic, bytes(data), attributes_json, at),
            )
            if cursor.rowcount == 0:
                self._warn_if_different(conn, message_id, topic, bytes(data), attributes_json)
                return False
            conn.execute(
                "INSERT INTO deliveries (seq, subscription, state, next_attempt_at, updated_at)"
                " SELECT ?, name, 'pending', ?, ? FROM subscriptions WHERE topic = ?",
                (cursor.lastrowid, at, at, topic),
            )
        return True

    @staticmethod
    def _warn_if_different(
        conn: sqlite3.Connection, message_id: str, topic: str, data: bytes, attributes_json: str
    ) -> None:
        # Same id with other content is almost always a bug upstream; say so, still ignore it.
        row = conn.execute(
            "SELECT topic, data, attributes FROM messages WHERE message_id = ?", (message_id,)
        ).fetchone()
        if (row["topic"], bytes(row["data"]), row["attributes"]) != (topic, data, attributes_json):
            logger.warning(
                "publish of %s ignored: that id is already taken by a different message on %s",
                message_id,
                row["topic"],
            )

    def pull(self, subscription: str, *, max_messages: int = 1) -> list[Delivery]:
        """Lease up to `max_messages` due deliveries in publish order; each counts as an attempt.

        Due: pending, retrying past its backoff, or leased with an expired lease (a dead worker).
        """
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, not {max_messages}")
        now = self._now()
        at = _to_text(now)
        lease_until = _to_text(now + dt.timedelta(seconds=self.retry.lease_s))
        deliveries: list[Delivery] = []
        with self._write() as conn:
            self._require_subscription(conn, subscription)
            self._bury_expired_leases(conn, subscription, at)
            # INDEXED BY: once ANALYZE has run, the planner may prefer walking the whole
            # (seq, subscription) index to skip the sort, which grows with every done delivery.
            rows = conn.execute(
                "SELECT d.id, d.state, d.attempts, d.detail, m.message_id, m.topic, m.data,"
                " m.attributes, m.published_at"
                " FROM deliveries AS d INDEXED BY deliveries_due JOIN messages AS m USING (seq)"
                " WHERE d.subscription = ? AND d.state IN ('pending', 'retrying', 'leased')"
                " AND d.next_attempt_at <= ?"
                " ORDER BY d.seq LIMIT ?",
                (subscription, at, max_messages),
            ).fetchall()
            for row in rows:
                detail = row["detail"]
                if row["state"] == "leased":
                    detail = f"lease of attempt {row['attempts']} expired (subscriber died?)"
                    self._record(conn, row["id"], row["attempts"], "lease expired", detail, at)
                    logger.warning("%s to %s: %s", row["message_id"], subscription, detail)
                token = secrets.token_hex(16)
                conn.execute(
                    "UPDATE deliveries SET state = 'leased', attempts = attempts + 1,"
                    " lease_token = ?, next_attempt_at = ?, detail = ?, updated_at = ?"
                    " WHERE id = ?",
                    (token, lease_until, detail, at, row["id"]),
                )
                deliveries.append(
                    Delivery(
                        message_id=row["message_id"],
                        topic=row["topic"],
                        subscription=subscription,
                        data=bytes(row["data"]),
                        attributes=json.loads(row["attributes"]),
                        attempt=row["attempts"] + 1,
                        published_at=_from_text(row["published_at"]),
                        ack_id=f"{row['id']}:{token}",
                    )
                )
        return deliveries

    def _require_subscription(self, conn: sqlite3.Connection, subscription: str) -> None:
        if subscription in self._subscriptions:
            return
        known = conn.execute(
            "SELECT 1 FROM subscriptions WHERE name = ?", (subscription,)
        ).fetchone()
        if known is None:
            raise KeyError(f"unknown subscription {subscription!r} in {self.path}")

    def _bury_expired_leases(self, conn: sqlite3.Connection, subscription: str, at: str) -> None:
        # A lease that expired on the last allowed attempt must not be handed out again.
        rows = conn.execute(
            "SELECT d.id, d.attempts, m.message_id FROM deliveries AS d JOIN messages AS m"
            " USING (seq) WHERE d.subscription = ? AND d.state = 'leased'"
            " AND d.next_attempt_at <= ? AND d.attempts >= ?",
            (subscription, at, self.retry.max_attempts),
        ).fetchall()
        for row in rows:
            detail = f"lease expired after {row['attempts']} attempts (subscriber died?)"
            self._kill(conn, row["id"], row["attempts"], "dead", detail, at)
            logger.warning("%s to %s dead-lettered: %s", row["message_id"], subscription, detail)

    def ack(self, delivery: Delivery, *, outcome: str = "done") -> None:
        """Mark the delivery done and keep `outcome`; a no-op if the lease was lost meanwhile."""
        at = _to_text(self._now())
        with self._write() as conn:
            held = self._held_lease(conn, delivery, "ack")
            if held is None:
                return
            delivery_id, attempts = held
            conn.execute(
                "UPDATE deliveries SET state = 'done', lease_token = NULL, detail = ?,"
                " updated_at = ? WHERE id = ?",
                (outcome, at, delivery_id),
            )
            self._record(conn, delivery_id, attempts, "done", outcome, at)

    def nack(self, delivery: Delivery, *, reason: str) -> None:
        """Retry after an exponential backoff; after the last attempt, dead-letter with `reason`."""
        now = self._now()
        at = _to_text(now)
        with self._write() as conn:
            held = self._held_lease(conn, delivery, "nack")
            if held is None:
                return
            delivery_id, attempts = held
            if attempts >= self.retry.max_attempts:
                self._kill(conn, delivery_id, attempts, "dead", reason, at)
                logger.warning(
                    "%s to %s dead-lettered after %d attempts: %s",
                    delivery.message_id,
                    delivery.subscription,
                    attempts,
                    reason,
                )
                return
            due = _to_text(now + self.retry.backoff(attempts))
            conn.execute(
                "UPDATE deliveries SET state = 'retrying', lease_token = NULL,"
                " next_attempt_at = ?, detail = ?, updated_at = ? WHERE id = ?",
                (due, reason, at, delivery_id),
            )
            self._record(conn, delivery_id, attempts, "retry", reason, at)
            logger.info(
                "%s to %s failed attempt %d (%s); next attempt at %s",
                delivery.message_id,
                delivery.subscription,
                attempts,
                reason,
                due,
            )

    def park(self, delivery: Delivery, *, reason: str) -> None:
        """Dead-letter at once with `reason` (a malformed event); a no-op if the lease was lost."""
        at = _to_text(self._now())
        with self._write() as conn:
            held = self._held_lease(conn, delivery, "park")
            if held is None:
                return
            delivery_id, attempts = held
            self._kill(conn, delivery_id, attempts, "parked", reason, at)
            logger.warning(
                "%s to %s parked: %s", delivery.message_id, delivery.subscription, reason
            )

    def _held_lease(
        self, conn: sqlite3.Connection, delivery: Delivery, verb: str
    ) -> tuple[int, int] | None:
        """(delivery row id, attempts) if `delivery` still holds its lease, else None."""
        delivery_id, token = _parse_ack_id(delivery.ack_id)
        row = conn.execute(
            "SELECT state, attempts, lease_token FROM deliveries WHERE id = ?", (delivery_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no delivery for ack_id {delivery.ack_id!r} in {self.path}")
        # An expired lease nobody has taken over is still honoured: the work did finish.
        if row["state"] == "leased" and row["lease_token"] == token:
            return delivery_id, row["attempts"]
        logger.warning(
            "%s of %s to %s (attempt %d) ignored: this handle no longer holds the lease;"
            " the delivery is now %s at attempt %d",
            verb,
            delivery.message_id,
            delivery.subscription,
            delivery.attempt,
            row["state"],
            row["attempts"],
        )
        return None

    def _kill(
        self,
        conn: sqlite3.Connection,
        delivery_id: int,
        attempts: int,
        outcome: str,
        detail: str,
        at: str,
    ) -> None:
        conn.execute(
            "UPDATE deliveries SET state = 'dead', lease_token = NULL, detail = ?,"
            " updated_at = ? WHERE id = ?",
            (detail, at, delivery_id),
        )
        self._record(conn, delivery_id, attempts, outcome, detail, at)

    @staticmethod
    def _record(
        conn: sqlite3.Connection,
        delivery_id: int,
        attempt: int,
        outcome: str,
        detail: str,
        at: str,
    ) -> None:
        conn.execute(
            "INSERT INTO attempts (delivery_id, attempt, outcome, detail, at)"
            " VALUES (?, ?, ?, ?, ?)",
            (delivery_id, attempt, outcome, detail, at),
        )

    def get_message(self, message_id: str) -> tuple[str, bytes, dict[str, str]]:
        """(topic, data, attributes) of a published message; KeyError if unknown."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT topic, data, attributes FROM messages WHERE message_id = ?", (message_id,)
            ).fetchone()
        if row is None:
            raise KeyError(f"unknown message {message_id!r}")
        return row["topic"], bytes(row["data"]), json.loads(row["attributes"])

    def dead_letters(self) -> list[BusRecord]:
        """Every dead delivery, in publish order, with the reason it died."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT m.message_id, m.topic, m.attributes, m.published_at, d.subscription,"
                " d.state, d.attempts, d.detail, d.updated_at"
                " FROM deliveries AS d JOIN messages AS m USING (seq)"
                " WHERE d.state = 'dead' ORDER BY d.seq, d.subscription"
            ).fetchall()
        return [_record_from_row(row) for row in rows]

    def redrive(self, message_id: str, subscription: str | None = None) -> int:
        """Make the dead deliveries of a message pending again with attempts reset; return how many.

        The earlier attempts stay in `history`.
        """
        at = _to_text(self._now())
        with self._write() as conn:
            rows = conn.execute(
                "SELECT d.id, d.attempts FROM deliveries AS d JOIN messages AS m USING (seq)"
                " WHERE m.message_id = :message_id AND d.state = 'dead'"
                " AND (:subscription IS NULL OR d.subscription = :subscription)",
                {"message_id": message_id, "subscription": subscription},
            ).fetchall()
            for row in rows:
                conn.execute(
                    "UPDATE deliveries SET state = 'pending', attempts = 0, lease_token = NULL,"
                    " next_attempt_at = ?, detail = 'redriven', updated_at = ? WHERE id = ?",
                    (at, at, row["id"]),
                )
                detail = f"redriven after {row['attempts']} attempts; attempts reset"
                self._record(conn, row["id"], row["attempts"], "redriven", detail, at)
        return len(rows)

    def log(self, *, limit: int = 100, topic: str | None = None) -> list[BusRecord]:
        """The newest `limit` messages, newest first, one record per subscription.

        A message no subscription received gives one record with state "published".
        """
        if limit < 0:
            raise ValueError(f"limit must not be negative, not {limit}")
        with self._read() as conn:
            rows = conn.execute(
                "WITH recent AS ("
                "  SELECT seq, message_id, topic, attributes, published_at FROM messages"
                "  WHERE :topic IS NULL OR topic = :topic ORDER BY seq DESC LIMIT :limit)"
                " SELECT r.message_id, r.topic, r.attributes, r.published_at, d.subscription,"
                " d.state, d.attempts, d.detail, d.updated_at"
                " FROM recent AS r LEFT JOIN deliveries AS d USING (seq)"
                " ORDER BY r.seq DESC, d.subscription",
                {"topic": topic, "limit": limit},
            ).fetchall()
        return [_record_from_row(row) for row in rows]

    def pending(self, subscriptions: list[str] | None = None) -> int:
        """Deliveries not yet done or dead (pending, leased or waiting to retry)."""
        sql = "SELECT COUNT(*) FROM deliveries WHERE state IN (?, ?, ?)"
        params: list[str] = list(_OPEN_STATES)
        if subscriptions is not None:
            sql += f" AND subscription IN ({', '.join('?' * len(subscriptions))})"
            params += subscriptions
        with self._read() as conn:
            row = conn.execute(sql, params).fetchone()
        return int(row[0])

    # -- beyond the port ---------------------------------------------------------------------

    def history(self, message_id: str) -> list[dict[str, Any]]:
        """Every settled attempt of a message, oldest first; KeyError if the message is unknown.

        Keys: subscription, attempt, outcome (done | retry | dead | parked | lease expired |
        redriven), detail, at (a UTC datetime). An attempt still leased has no entry yet.
        """
        with self._read() as conn:
            known = conn.execute(
                "SELECT 1 FROM messages WHERE message_id = ?", (message_id,)
            ).fetchone()
            rows = conn.execute(
                "SELECT d.subscription, a.attempt, a.outcome, a.detail, a.at"
                " FROM attempts AS a JOIN deliveries AS d ON d.id = a.delivery_id"
                " JOIN messages AS m USING (seq) WHERE m.message_id = ? ORDER BY a.id",
                (message_id,),
            ).fetchall()
        if known is None:
            raise KeyError(f"unknown message {message_id!r}")
        return [
            {
                "subscription": row["subscription"],
                "attempt": row["attempt"],
                "outcome": row["outcome"],
                "detail": row["detail"],
                "at": _from_text(row["at"]),
            }
            for row in rows
        ]


def _parse_ack_id(ack_id: str) -> tuple[int, str]:
    # "<delivery row id>:<lease token>": the token changes on every lease, so a handle from an
    # older lease can be told apart from the current one.
    row_id, sep, token = ack_id.partition(":")
    if not sep or not row_id.isdigit() or not token:
        raise ValueError(f"malformed ack_id {ack_id!r}")
    return int(row_id), token


def _record_from_row(row: sqlite3.Row) -> BusRecord:
    published_at = _from_text(row["published_at"])
    if row["subscription"] is None:
        return BusRecord.published_only(
            row["message_id"], row["topic"], published_at, json.loads(row["attributes"])
        )
    return BusRecord(
        message_id=row["message_id"],
        topic=row["topic"],
        subscription=row["subscription"],
        state=row["state"],
        attempts=row["attempts"],
        detail=row["detail"],
        published_at=published_at,
        updated_at=_from_text(row["updated_at"]),
        attributes=json.loads(row["attributes"]),
    )
