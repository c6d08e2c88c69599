"""The local bus's delivery state changes in SQL: leasing due deliveries, checking a handle's
lease, settling, dead-lettering and redriving. Each runs inside the caller's write transaction."""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
from pathlib import Path

from cashmatch.adapters.local.bus.schema import from_text
from cashmatch.ports import Delivery

logger = logging.getLogger(__name__)


def bury_expired_leases(
    conn: sqlite3.Connection, subscription: str, at: str, max_attempts: int
) -> None:
    """Dead-letter the deliveries whose lease expired on their last allowed attempt."""
    # Such a lease must not be handed out again.
    rows = conn.execute(
        "SELECT d.id, d.attempts, m.message_id FROM deliveries AS d JOIN messages AS m"
        " USING (seq) WHERE d.subscription = ? AND d.state = 'leased'"
        " AND d.next_attempt_at <= ? AND d.attempts >= ?",
        (subscription, at, max_attempts),
    ).fetchall()
    for row in rows:
        detail = f"lease expired after {row['attempts']} attempts (subscriber died?)"
        kill(conn, row["id"], row["attempts"], "dead", detail, at)
        logger.warning("%s to %s dead-lettered: %s", row["message_id"], subscription, detail)


def lease_due(
    conn: sqlite3.Connection, subscription: str, at: str, lease_until: str, max_messages: int
) -> list[Delivery]:
    """Lease up to `max_messages` due deliveries of `subscription` until `lease_until`."""
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
    return [_lease(conn, row, subscription, at, lease_until) for row in rows]


def _lease(
    conn: sqlite3.Connection, row: sqlite3.Row, subscription: str, at: str, lease_until: str
) -> Delivery:
    detail = row["detail"]
    if row["state"] == "leased":
        detail = f"lease of attempt {row['attempts']} expired (subscriber died?)"
        record_attempt(conn, row["id"], row["attempts"], "lease expired", detail, at)
        logger.warning("%s to %s: %s", row["message_id"], subscription, detail)
    token = secrets.token_hex(16)
    conn.execute(
        "UPDATE deliveries SET state = 'leased', attempts = attempts + 1,"
        " lease_token = ?, next_attempt_at = ?, detail = ?, updated_at = ?"
        " WHERE id = ?",
        (token, lease_until, detail, at, row["id"]),
    )
    return Delivery(
        message_id=row["message_id"],
        topic=row["topic"],
        subscription=subscription,
        data=bytes(row["data"]),
        attributes=json.loads(row["attributes"]),
        attempt=row["attempts"] + 1,
        published_at=from_text(row["published_at"]),
        ack_id=f"{row['id']}:{token}",
    )


def held_lease(
    conn: sqlite3.Connection, delivery: Delivery, verb: str, path: Path
) -> tuple[int, int] | None:
    """(delivery row id, attempts) if `delivery` still holds its lease, else None."""
    delivery_id, token = _parse_ack_id(delivery.ack_id)
    row = conn.execute(
        "SELECT state, attempts, lease_token FROM deliveries WHERE id = ?", (delivery_id,)
    ).fetchone()
    if row is None:
        raise KeyError(f"no delivery for ack_id {delivery.ack_id!r} in {path}")
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


def _parse_ack_id(ack_id: str) -> tuple[int, str]:
    # "<delivery row id>:<lease token>": the token changes on every lease, so a handle from an
    # older lease can be told apart from the current one.
    row_id, sep, token = ack_id.partition(":")
    if not sep or not row_id.isdigit() or not token:
        raise ValueError(f"malformed ack_id {ack_id!r}")
    return int(row_id), token


def mark_done(
    conn: sqlite3.Connection, delivery_id: int, attempts: int, outcome: str, at: str
) -> None:
    """Settle a delivery for good, keeping `outcome`."""
    conn.execute(
        "UPDATE deliveries SET state = 'done', lease_token = NULL, detail = ?,"
        " updated_at = ? WHERE id = ?",
        (outcome, at, delivery_id),
    )
    record_attempt(conn, delivery_id, attempts, "done", outcome, at)


def schedule_retry(
    conn: sqlite3.Connection, delivery_id: int, attempts: int, due: str, reason: str, at: str
) -> None:
    """Release the lease; the delivery is due again at `due`."""
    conn.execute(
        "UPDATE deliveries SET state = 'retrying', lease_token = NULL,"
        " next_attempt_at = ?, detail = ?, updated_at = ? WHERE id = ?",
        (due, reason, at, delivery_id),
    )
    record_attempt(conn, delivery_id, attempts, "retry", reason, at)


def kill(
    conn: sqlite3.Connection,
    delivery_id: int,
    attempts: int,
    outcome: str,
    detail: str,
    at: str,
) -> None:
    """Dead-letter a delivery: it stays dead until redriven."""
    conn.execute(
        "UPDATE deliveries SET state = 'dead', lease_token = NULL, detail = ?,"
        " updated_at = ? WHERE id = ?",
        (detail, at, delivery_id),
    )
    record_attempt(conn, delivery_id, attempts, outcome, detail, at)


def revive(conn: sqlite3.Connection, message_id: str, subscription: str | None, at: str) -> int:
    """Make the dead deliveries of a message (to `subscription`, or all) pending again with
    attempts reset; how many."""
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
        record_attempt(conn, row["id"], row["attempts"], "redriven", detail, at)
    return len(rows)


def record_attempt(
    conn: sqlite3.Connection,
    delivery_id: int,
    attempt: int,
    outcome: str,
    detail: str,
    at: str,
) -> None:
    """Keep one settled attempt in the history."""
    conn.execute(
        "INSERT INTO attempts (delivery_id, attempt, outcome, detail, at) VALUES (?, ?, ?, ?, ?)",
        (delivery_id, attempt, outcome, detail, at),
    )
