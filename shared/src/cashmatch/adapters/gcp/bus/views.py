"""The Pub/Sub bus's journal read back as the port's answers: messages, dead letters, the log,
pending counts and attempt history."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from cashmatch.adapters.gcp.bus.journal import Journal
from cashmatch.adapters.gcp.bus.wire import ATTR_ORIGINAL_ID
from cashmatch.ports import OPEN_STATES, BusRecord


def message_of(journal: Journal, message_id: str) -> tuple[str, bytes, dict[str, str]]:
    """(topic, data, attributes) of a published message; KeyError if unknown."""
    record = journal.message(message_id)
    if record is None:
        raise KeyError(f"unknown message {message_id!r}")
    return record["topic"], base64.b64decode(record["data"]), dict(record["attributes"])


def dead_letter_records(journal: Journal, dead_letter_topic: str) -> list[BusRecord]:
    """Dead deliveries in publish order, and messages parked on the dead-letter topic by
    others (the push entry point) that no dead delivery here accounts for."""
    messages = journal.messages()
    by_id = {m["message_id"]: m for m in messages}
    order = {m["message_id"]: i for i, m in enumerate(messages)}
    dead = [d for d in journal.deliveries() if d["state"] == "dead"]
    records = [_bus_record(by_id[d["message_id"]], d) for d in dead if d["message_id"] in by_id]
    for message in messages:
        attributes = message["attributes"]
        if message["topic"] == dead_letter_topic and ATTR_ORIGINAL_ID not in attributes:
            records.append(_bus_record(message, _parked_by_others(message)))
    return sorted(records, key=lambda r: (order[r.message_id], r.subscription or ""))


def _parked_by_others(message: dict[str, Any]) -> dict[str, Any]:
    # The push entry point names the service and the reason in the attributes.
    attributes = message["attributes"]
    return {
        "subscription": attributes.get("service"),
        "state": "dead",
        "attempts": 0,
        "detail": attributes.get("reason", ""),
        "updated_at": message["published_at"],
    }


def log_records(
    journal: Journal, subscriptions: dict[str, str], *, limit: int, topic: str | None
) -> list[BusRecord]:
    """The newest `limit` journalled messages, newest first, one record per subscription."""
    messages = [m for m in journal.messages() if topic is None or m["topic"] == topic]
    newest = list(reversed(messages))[:limit]
    wanted = {m["message_id"] for m in newest}
    deliveries: dict[str, dict[str, dict[str, Any]]] = {}
    for delivery in journal.deliveries():
        if delivery["message_id"] in wanted:
            deliveries.setdefault(delivery["message_id"], {})[delivery["subscription"]] = delivery
    records = []
    for message in newest:
        known = deliveries.get(message["message_id"], {})
        names = {s for s, t in subscriptions.items() if t == message["topic"]}
        names |= set(known)
        if not names:
            records.append(_bus_record(message, None))
        for name in sorted(names):
            records.append(_bus_record(message, known.get(name) or _pending(name)))
    return records


def pending_count(journal: Journal, subscriptions: dict[str, str], names: list[str]) -> int:
    """Journalled deliveries to `names` not yet done or dead."""
    states = {(d["message_id"], d["subscription"]): d["state"] for d in journal.deliveries()}
    count = 0
    for message in journal.messages():
        for name in names:
            if subscriptions.get(name) != message["topic"]:
                continue
            if states.get((message["message_id"], name), "pending") in OPEN_STATES:
                count += 1
    return count


def attempt_history(journal: Journal, message_id: str) -> list[dict[str, Any]]:
    """Every settled attempt of a message, oldest first; KeyError if the message is unknown."""
    if journal.message(message_id) is None:
        raise KeyError(f"unknown message {message_id!r}")
    entries = [
        {
            **entry,
            "subscription": d["subscription"],
            "at": dt.datetime.fromisoformat(entry["at"]),
        }
        for d in journal.deliveries(message_id)
        for entry in d["history"]
    ]
    entries.sort(key=lambda e: (e["at"], e["seq"]))
    for entry in entries:
        del entry["seq"]
    return [
        {k: e[k] for k in ("subscription", "attempt", "outcome", "detail", "at")} for e in entries
    ]


def _pending(subscription: str) -> dict[str, Any]:
    return {
        "subscription": subscription,
        "state": "pending",
        "attempts": 0,
        "detail": "",
        "updated_at": None,
    }


def _bus_record(message: dict[str, Any], delivery: dict[str, Any] | None) -> BusRecord:
    published_at = dt.datetime.fromisoformat(message["published_at"])
    if delivery is None:
        return BusRecord.published_only(
            message["message_id"], message["topic"], published_at, dict(message["attributes"])
        )
    updated = delivery.get("updated_at")
    return BusRecord(
        message_id=message["message_id"],
        topic=message["topic"],
        subscription=delivery["subscription"],
        state=delivery["state"],
        attempts=delivery["attempts"],
        detail=delivery["detail"],
        published_at=published_at,
        updated_at=dt.datetime.fromisoformat(updated) if updated else published_at,
        attributes=dict(message["attributes"]),
    )
