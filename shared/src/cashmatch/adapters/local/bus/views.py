"""The local bus's read-only queries: a message, the dead letters, the log, pending counts and
attempt history, as the port's answers. Each runs inside the caller's read transaction."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from cashmatch.adapters.local.bus.schema import from_text
from cashmatch.ports import OPEN_STATES, BusRecord


def message_of(
    conn: sqlite3.Connection, message_id: str
) -> tuple[str, bytes, dict[str, str]] | None:
    """(topic, data, attributes) of a published message; None if unknown."""
    row = conn.execute(
        "SELECT topic, data, attributes FROM messages WHERE message_id = ?", (message_id,)
    ).fetchone()
    if row is None:
        return None
    return row["topic"], bytes(row["data"]), json.loads(row["attributes"])


def dead_letter_records(conn: sqlite3.Connection) -> list[BusRecord]:
    """Every dead delivery, in publish order, with the reason it died."""
    rows = conn.execute(
        "SELECT m.message_id, m.topic, m.attributes, m.published_at, d.subscription,"
        " d.state, d.attempts, d.detail, d.updated_at"
        " FROM deliveries AS d JOIN messages AS m USING (seq)"
        " WHERE d.state = 'dead' ORDER BY d.seq, d.subscription"
    ).fetchall()
    return [_record_from_row(row) for row in rows]


def log_records(conn: sqlite3.Connection, *, limit: int, topic: str | None) -> list[BusRecord]:
    """The newest `limit` messages (of `topic`, or all), newest first, one record per
    subscription."""
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


def pending_count(conn: sqlite3.Connection, subscriptions: list[str] | None) -> int:
    """Deliveries (to `subscriptions`, or all) not yet done or dead."""
    sql = "SELECT COUNT(*) FROM deliveries WHERE state IN (?, ?, ?)"
    params: list[str] = list(OPEN_STATES)
    if subscriptions is not None:
        sql += f" AND subscription IN ({', '.join('?' * len(subscriptions))})"
        params += subscriptions
    row = conn.execute(sql, params).fetchone()
    return int(row[0])


def attempt_history(conn: sqlite3.Connection, message_id: str) -> list[dict[str, Any]] | None:
    """Every settled attempt of a message, oldest first; None if the message is unknown."""
    known = conn.execute("SELECT 1 FROM messages WHERE message_id = ?", (message_id,)).fetchone()
    rows = conn.execute(
        "SELECT d.subscription, a.attempt, a.outcome, a.detail, a.at"
        " FROM attempts AS a JOIN deliveries AS d ON d.id = a.delivery_id"
        " JOIN messages AS m USING (seq) WHERE m.message_id = ? ORDER BY a.id",
        (message_id,),
    ).fetchall()
    if known is None:
        return None
    return [
        {
            "subscription": row["subscription"],
            "attempt": row["attempt"],
            "outcome": row["outcome"],
            "detail": row["detail"],
            "at": from_text(row["at"]),
        }
        for row in rows
    ]


def _record_from_row(row: sqlite3.Row) -> BusRecord:
    published_at = from_text(row["published_at"])
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
        updated_at=from_text(row["updated_at"]),
        attributes=json.loads(row["attributes"]),
    )
