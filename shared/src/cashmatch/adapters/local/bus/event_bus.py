"""SqliteEventBus: the EventBus port on one SQLite file, shared by the local stack's processes."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from cashmatch.adapters.local.bus.connection import begin, connect
from cashmatch.adapters.local.bus.deliveries import (
    bury_expired_leases,
    held_lease,
    kill,
    lease_due,
    mark_done,
    revive,
    schedule_retry,
)
from cashmatch.adapters.local.bus.schema import create_schema, to_text
from cashmatch.adapters.local.bus.views import (
    attempt_history,
    dead_letter_records,
    log_records,
    message_of,
    pending_count,
)
from cashmatch.ports import BusRecord, Delivery, RetryPolicy

logger = logging.getLogger(__name__)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SqliteEventBus:
    """Topics and subscriptions with at-least-once delivery, kept in one SQLite file (WAL mode).

    `subscriptions` maps a subscription name to its topic; they are registered in the file, and
    a publish fans out to every subscription of the topic that any process has registered.

    Several processes may share the file: every state change is a single `BEGIN IMMEDIATE`
    transaction, so two workers never lease the same delivery and a crash leaves nothing
    half-written. Callers poll `pull`; there is no push and no wake-up signal.
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
        create_schema(self.path, self._subscriptions, busy_timeout_s)

    # -- connection and transactions --------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._conn_pid != os.getpid():
            # An SQLite connection must not cross a fork: its locks belong to the parent.
            raise RuntimeError(
                "this SqliteEventBus was used before the process forked; build one per process"
            )
        if self._conn is None:
            self._conn = connect(self.path, self._busy_timeout_s)
            self._conn_pid = os.getpid()
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so a read-then-update (a lease) cannot race
        # another process, and waits on the busy timeout instead of failing mid-transaction.
        with self._lock, begin(self._connection(), "IMMEDIATE") as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        # A deferred transaction gives several SELECTs one snapshot; WAL readers never block.
        with self._lock, begin(self._connection(), "DEFERRED") as conn:
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
        at = to_text(self._now())
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
        at = to_text(now)
        lease_until = to_text(now + dt.timedelta(seconds=self.retry.lease_s))
        with self._write() as conn:
            self._require_subscription(conn, subscription)
            bury_expired_leases(conn, subscription, at, self.retry.max_attempts)
            return lease_due(conn, subscription, at, lease_until, max_messages)

    def _require_subscription(self, conn: sqlite3.Connection, subscription: str) -> None:
        if subscription in self._subscriptions:
            return
        known = conn.execute(
            "SELECT 1 FROM subscriptions WHERE name = ?", (subscription,)
        ).fetchone()
        if known is None:
            raise KeyError(f"unknown subscription {subscription!r} in {self.path}")

    def ack(self, delivery: Delivery, *, outcome: str = "done") -> None:
        """Mark the delivery done and keep `outcome`; a no-op if the lease was lost meanwhile."""
        at = to_text(self._now())
        with self._write() as conn:
            held = held_lease(conn, delivery, "ack", self.path)
            if held is None:
                return
            delivery_id, attempts = held
            mark_done(conn, delivery_id, attempts, outcome, at)

    def nack(self, delivery: Delivery, *, reason: str) -> None:
        """Retry after an exponential backoff; after the last attempt, dead-letter with `reason`."""
        now = self._now()
        at = to_text(now)
        with self._write() as conn:
            held = held_lease(conn, delivery, "nack", self.path)
            if held is None:
                return
            delivery_id, attempts = held
            if attempts >= self.retry.max_attempts:
                kill(conn, delivery_id, attempts, "dead", reason, at)
                logger.warning(
                    "%s to %s dead-lettered after %d attempts: %s",
                    delivery.message_id,
                    delivery.subscription,
                    attempts,
                    reason,
                )
                return
            due = to_text(now + self.retry.backoff(attempts))
            schedule_retry(conn, delivery_id, attempts, due, reason, at)
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
        at = to_text(self._now())
        with self._write() as conn:
            held = held_lease(conn, delivery, "park", self.path)
            if held is None:
                return
            delivery_id, attempts = held
            kill(conn, delivery_id, attempts, "parked", reason, at)
            logger.warning(
                "%s to %s parked: %s", delivery.message_id, delivery.subscription, reason
            )

    def get_message(self, message_id: str) -> tuple[str, bytes, dict[str, str]]:
        """(topic, data, attributes) of a published message; KeyError if unknown."""
        with self._read() as conn:
            found = message_of(conn, message_id)
        if found is None:
            raise KeyError(f"unknown message {message_id!r}")
        return found

    def dead_letters(self) -> list[BusRecord]:
        """Every dead delivery, in publish order, with the reason it died."""
        with self._read() as conn:
            return dead_letter_records(conn)

    def redrive(self, message_id: str, subscription: str | None = None) -> int:
        """Make the dead deliveries of a message pending again with attempts reset; return how many.

        The earlier attempts stay in `history`.
        """
        at = to_text(self._now())
        with self._write() as conn:
            return revive(conn, message_id, subscription, at)

    def log(self, *, limit: int = 100, topic: str | None = None) -> list[BusRecord]:
        """The newest `limit` messages, newest first, one record per subscription.

        A message no subscription received gives one record with state "published".
        """
        if limit < 0:
            raise ValueError(f"limit must not be negative, not {limit}")
        with self._read() as conn:
            return log_records(conn, limit=limit, topic=topic)

    def pending(self, subscriptions: list[str] | None = None) -> int:
        """Deliveries not yet done or dead (pending, leased or waiting to retry)."""
        with self._read() as conn:
            return pending_count(conn, subscriptions)

    # -- beyond the port ---------------------------------------------------------------------

    def history(self, message_id: str) -> list[dict[str, Any]]:
        """Every settled attempt of a message, oldest first; KeyError if the message is unknown.

        Keys: subscription, attempt, outcome (done | retry | dead | parked | lease expired |
        redriven), detail, at (a UTC datetime). An attempt still leased has no entry yet.
        """
        with self._read() as conn:
            found = attempt_history(conn, message_id)
        if found is None:
            raise KeyError(f"unknown message {message_id!r}")
        return found
