"""The Pub/Sub bus's journal: one JSON object per message and per (message, subscription) in a
BlobStore, keeping the log, outcomes and history that Pub/Sub itself does not."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from cashmatch.ports import BlobNotFound, BlobStore, PreconditionFailed

JOURNAL_PREFIX = "bus"
TERMINAL_STATES = ("done", "dead")
_CAS_ATTEMPTS = 20

Change = Callable[[dict[str, Any]], dict[str, Any] | None]


def _quote(message_id: str) -> str:
    # One path segment, never "." or "..", whatever the id holds.
    return quote(message_id, safe="-_").replace(".", "%2E")


def iso(moment: dt.datetime) -> str:
    """The journal's form of a moment: ISO 8601 in UTC."""
    return moment.astimezone(dt.UTC).isoformat()


_SEQ = iter(range(1, 2**62))  # orders history entries written in the same microsecond
_SEQ_LOCK = threading.Lock()


def append_history(
    record: dict[str, Any], attempt: int, outcome: str, detail: str, at: str
) -> None:
    """Add one settled attempt to a delivery record's history."""
    with _SEQ_LOCK:
        seq = next(_SEQ)
    record["history"].append(
        {"attempt": attempt, "outcome": outcome, "detail": detail, "at": at, "seq": seq}
    )


def _new_delivery(message_id: str, subscription: str) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "subscription": subscription,
        "state": "pending",
        "attempts": 0,
        "detail": "",
        "updated_at": None,
        "history": [],
    }


class Journal:
    """Messages and delivery outcomes as JSON objects in a BlobStore."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        self._messages: dict[str, dict[str, Any]] = {}  # key -> record, once published
        self._lock = threading.Lock()

    @staticmethod
    def message_key(message_id: str) -> str:
        return f"{JOURNAL_PREFIX}/messages/{_quote(message_id)}.json"

    @staticmethod
    def delivery_key(message_id: str, subscription: str) -> str:
        return f"{JOURNAL_PREFIX}/deliveries/{_quote(message_id)}/{_quote(subscription)}.json"

    def create_message(self, record: dict[str, Any]) -> int:
        """Store a new message record; PreconditionFailed if the id is taken."""
        key = self.message_key(record["message_id"])
        return self.blobs.put(key, json.dumps(record).encode(), if_generation_match=0)

    def read_message(self, message_id: str) -> tuple[dict[str, Any], int] | None:
        key = self.message_key(message_id)
        try:
            blob = self.blobs.get(key)
        except BlobNotFound:
            return None
        record = json.loads(blob.data)
        if record.get("pubsub_message_id"):
            with self._lock:
                self._messages[key] = record
        return record, blob.generation

    def mark_published(self, record: dict[str, Any], pubsub_id: str, generation: int) -> None:
        done = {**record, "pubsub_message_id": pubsub_id}
        try:
            self.blobs.put(
                self.message_key(record["message_id"]),
                json.dumps(done).encode(),
                if_generation_match=generation,
            )
        except PreconditionFailed:
            return  # another publisher of the same id recorded its send first
        with self._lock:
            self._messages[self.message_key(record["message_id"])] = done

    def message(self, message_id: str) -> dict[str, Any] | None:
        with self._lock:
            cached = self._messages.get(self.message_key(message_id))
        if cached is not None:
            return cached
        found = self.read_message(message_id)
        return found[0] if found else None

    def messages(self) -> list[dict[str, Any]]:
        """Every message record, oldest first (records are immutable once sent, so cached)."""
        records = []
        for key in self.blobs.list(f"{JOURNAL_PREFIX}/messages/"):
            with self._lock:
                record = self._messages.get(key)
            if record is None:
                try:
                    record = json.loads(self.blobs.get(key).data)
                except BlobNotFound:
                    continue
                if record.get("pubsub_message_id"):
                    with self._lock:
                        self._messages[key] = record
            records.append(record)
        return sorted(records, key=lambda r: (r["published_at"], r["message_id"]))

    def deliveries(self, message_id: str | None = None) -> list[dict[str, Any]]:
        """Delivery records, of one message or all."""
        prefix = f"{JOURNAL_PREFIX}/deliveries/"
        if message_id is not None:
            prefix += f"{_quote(message_id)}/"
        records = []
        for key in self.blobs.list(prefix):
            try:
                records.append(json.loads(self.blobs.get(key).data))
            except BlobNotFound:
                continue
        return records

    def update_delivery(
        self, message_id: str, subscription: str, change: Change
    ) -> dict[str, Any] | None:
        """Apply `change` to the delivery record by compare-and-swap; None from `change` = keep."""
        key = self.delivery_key(message_id, subscription)
        for _ in range(_CAS_ATTEMPTS):
            try:
                blob = self.blobs.get(key)
                current, generation = json.loads(blob.data), blob.generation
            except BlobNotFound:
                current, generation = _new_delivery(message_id, subscription), 0
            changed = change(json.loads(json.dumps(current)))
            if changed is None:
                return current
            try:
                self.blobs.put(key, json.dumps(changed).encode(), if_generation_match=generation)
            except PreconditionFailed:
                continue  # someone else changed it meanwhile: apply the change to theirs
            return changed
        raise RuntimeError(f"delivery record {key} kept changing; gave up after {_CAS_ATTEMPTS}")
