"""EventBus on Pub/Sub (google-cloud-pubsub), as far as Pub/Sub's semantics allow.

Pub/Sub delivers at least once, like the local bus, but differs from the port in four ways, and
this adapter closes each gap as follows:

- Pub/Sub assigns its own message ids and never deduplicates publishes. Our id travels as the
  attribute `cashmatch_id`, and a publish first creates `bus/messages/<id>.json` in the journal
  (a BlobStore, the bucket on the gcp stack) with "only if absent", so a second publish of the
  same id is ignored. Two publishers racing with one id may both send (at least once).
- Pub/Sub keeps no per-message log, outcome or history. The journal does: one object per
  message and one per (message, subscription), updated on pull, ack, nack and park by
  compare-and-swap. `log`, `dead_letters`, `history` and `pending` read it, so they know what
  went through this adapter: push deliveries to Cloud Run are settled by HTTP status and are
  not recorded there (use Cloud Monitoring's num_undelivered_messages for push backlogs), and
  messages published by other clients appear once pulled here.
- A nack cannot carry a backoff: the lease is set to the backoff instead (modify-ack-deadline,
  0 to 600 s), which makes the message due again then. The attempt count comes from the journal
  (Pub/Sub counts attempts only with a dead-letter policy); after the last attempt, or on park,
  the message is published to the dead-letter topic with a `reason` attribute, then acked.
- A delivered message cannot be un-acked, so `redrive` publishes the message again with the
  attribute `cashmatch_only_for=<subscription>`; this adapter's pull acks and skips a message
  addressed to another subscription. (Push subscriptions need the matching filter:
  `NOT attributes:cashmatch_only_for OR attributes.cashmatch_only_for = "<name>"`.)

Without a journal (`journal=None`) the bus still publishes, pulls and settles, but cannot
deduplicate, and `log`, `dead_letters`, `history`, `get_message`, `redrive` and `pending` raise
NotImplementedError rather than answer wrongly.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import logging
import secrets
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from google.api_core import exceptions as gexc

from cashmatch.ports import (
    BlobNotFound,
    BlobStore,
    BusRecord,
    Delivery,
    PreconditionFailed,
    RetryPolicy,
)

logger = logging.getLogger(__name__)

ATTR_ID = "cashmatch_id"
ATTR_ONLY_FOR = "cashmatch_only_for"
ATTR_ORIGINAL_ID = "cashmatch_original_id"
ATTR_ORIGINAL_TOPIC = "cashmatch_original_topic"
_INTERNAL = (ATTR_ID, ATTR_ONLY_FOR)

JOURNAL_PREFIX = "bus"
_OPEN_STATES = ("pending", "leased", "retrying")
_TERMINAL_STATES = ("done", "dead")
_MAX_ACK_DEADLINE_S = 600  # Pub/Sub's limit for a lease
_MIN_ACK_DEADLINE_S = 10
_CAS_ATTEMPTS = 20
_REASON_CHARS = 1000  # attribute values are limited to 1024 bytes


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _quote(message_id: str) -> str:
    # One path segment, never "." or "..", whatever the id holds.
    return quote(message_id, safe="-_").replace(".", "%2E")


class _Journal:
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
        self,
        message_id: str,
        subscription: str,
        change: Callable[[dict[str, Any]], dict[str, Any] | None],
    ) -> dict[str, Any] | None:
        """Apply `change` to the delivery record by compare-and-swap; None from `change` = keep."""
        key = self.delivery_key(message_id, subscription)
        for _ in range(_CAS_ATTEMPTS):
            try:
                blob = self.blobs.get(key)
                current, generation = json.loads(blob.data), blob.generation
            except BlobNotFound:
                current = {
                    "message_id": message_id,
                    "subscription": subscription,
                    "state": "pending",
                    "attempts": 0,
                    "detail": "",
                    "updated_at": None,
                    "history": [],
                }
                generation = 0
            changed = change(json.loads(json.dumps(current)))
            if changed is None:
                return current
            try:
                self.blobs.put(key, json.dumps(changed).encode(), if_generation_match=generation)
            except PreconditionFailed:
                continue  # someone else changed it meanwhile: apply the change to theirs
            return changed
        raise RuntimeError(f"delivery record {key} kept changing; gave up after {_CAS_ATTEMPTS}")


class PubSubEventBus:
    """The EventBus port on Pub/Sub topics and pull subscriptions; see the module docstring.

    `subscriptions` maps subscription names to topic names (both Pub/Sub ids in `project`).
    `retry` gives the attempts before the dead letter, the nack backoffs and the lease that
    `ensure_topology` sets as the subscriptions' ack deadline (clamped to 10-600 s).
    """

    def __init__(
        self,
        publisher: Any,
        subscriber: Any,
        project: str,
        subscriptions: dict[str, str],
        *,
        journal: BlobStore | None,
        dead_letter_topic: str = "dead-letter",
        retry: RetryPolicy | None = None,
        pull_timeout_s: float = 10.0,
        publish_timeout_s: float = 60.0,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        if not project:
            raise ValueError("a project id is required")
        self.publisher = publisher
        self.subscriber = subscriber
        self.project = project
        self.subscriptions = dict(subscriptions)
        self.dead_letter_topic = dead_letter_topic
        self.retry = retry or RetryPolicy()
        self.pull_timeout_s = pull_timeout_s
        self.publish_timeout_s = publish_timeout_s
        self._clock = clock
        self._journal = _Journal(journal) if journal is not None else None

    # -- names and set-up ------------------------------------------------------------------

    def topic_path(self, topic: str) -> str:
        """projects/<project>/topics/<topic>."""
        return f"projects/{self.project}/topics/{topic}"

    def subscription_path(self, subscription: str) -> str:
        """projects/<project>/subscriptions/<subscription>."""
        return f"projects/{self.project}/subscriptions/{subscription}"

    def ensure_topology(self, topics: list[str] | tuple[str, ...] = ()) -> None:
        """Create `topics`, the subscribed ones, the dead-letter topic and the pull subscriptions
        if absent (for emulators, which start empty; on GCP, Terraform owns them)."""
        wanted = {*topics, *self.subscriptions.values(), self.dead_letter_topic}
        for topic in sorted(wanted):
            with contextlib.suppress(gexc.AlreadyExists):
                self.publisher.create_topic(request={"name": self.topic_path(topic)})
        deadline = int(min(max(self.retry.lease_s, _MIN_ACK_DEADLINE_S), _MAX_ACK_DEADLINE_S))
        for name, topic in sorted(self.subscriptions.items()):
            with contextlib.suppress(gexc.AlreadyExists):
                self.subscriber.create_subscription(
                    request={
                        "name": self.subscription_path(name),
                        "topic": self.topic_path(topic),
                        "ack_deadline_seconds": deadline,
                    }
                )

    def close(self) -> None:
        """Flush pending publishes and close both clients' channels."""
        self.publisher.stop()
        # The publisher has no close(); its transport does, and an open channel outlives it.
        transport = getattr(self.publisher, "transport", None) or getattr(
            self.publisher, "_transport", None
        )
        if transport is not None:
            transport.close()
        self.subscriber.close()

    def _now(self) -> dt.datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the bus clock must return timezone-aware datetimes")
        return now.astimezone(dt.UTC)

    def _need_journal(self, what: str) -> _Journal:
        if self._journal is None:
            raise NotImplementedError(
                f"{what} needs the bus journal: Pub/Sub itself keeps no per-message log"
            )
        return self._journal

    # -- publishing ----------------------------------------------------------------------------

    def _send(self, topic: str, data: bytes, attributes: dict[str, str]) -> str:
        future = self.publisher.publish(self.topic_path(topic), data, **attributes)
        return str(future.result(timeout=self.publish_timeout_s))

    def publish(
        self, topic: str, data: bytes, attributes: dict[str, str], *, message_id: str
    ) -> bool:
        """Publish once per `message_id` (journal-checked); False if it was published before."""
        wire = {**attributes, ATTR_ID: message_id}
        if self._journal is None:
            self._send(topic, data, wire)
            return True
        record = {
            "message_id": message_id,
            "topic": topic,
            "data": base64.b64encode(data).decode(),
            "attributes": dict(attributes),
            "published_at": self._now().isoformat(),
            "pubsub_message_id": None,
        }
        try:
            generation = self._journal.create_message(record)
        except PreconditionFailed:
            found = self._journal.read_message(message_id)
            if found is None:  # deleted in between: nothing sensible to compare with
                raise
            existing, generation = found
            if (existing["topic"], existing["data"]) != (topic, record["data"]):
                logger.warning(
                    "publish of %s to %s ignored: the id is already taken by a different message",
                    message_id,
                    topic,
                )
                return False
            if existing.get("pubsub_message_id"):
                return False
            # An earlier publish of this id stopped before Pub/Sub confirmed it: send again
            # (at least once) rather than lose the message.
            record = existing
        pubsub_id = self._send(topic, data, wire)
        self._journal.mark_published(record, pubsub_id, generation)
        return True

    # -- receiving -----------------------------------------------------------------------------

    def pull(self, subscription: str, *, max_messages: int = 1) -> list[Delivery]:
        """Synchronous pull of up to `max_messages`; an empty wait past the timeout gives []."""
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, not {max_messages}")
        if subscription not in self.subscriptions:
            raise KeyError(f"unknown subscription {subscription!r}")
        path = self.subscription_path(subscription)
        try:
            response = self.subscriber.pull(
                request={"subscription": path, "max_messages": max_messages},
                timeout=self.pull_timeout_s,
            )
        except gexc.DeadlineExceeded:
            return []  # the service waited for messages and none came
        deliveries = []
        for received in response.received_messages:
            delivery = self._accept(subscription, received)
            if delivery is not None:
                deliveries.append(delivery)
        return deliveries

    def _accept(self, subscription: str, received: Any) -> Delivery | None:
        message = received.message
        attributes = dict(message.attributes)
        message_id = attributes.get(ATTR_ID) or str(message.message_id)
        only_for = attributes.get(ATTR_ONLY_FOR)
        for name in _INTERNAL:
            attributes.pop(name, None)
        published_at = _plain_datetime(message.publish_time)
        delivery = Delivery(
            message_id=message_id,
            topic=self.subscriptions[subscription],
            subscription=subscription,
            data=bytes(message.data),
            attributes=attributes,
            attempt=max(int(received.delivery_attempt), 1),
            published_at=published_at,
            ack_id=received.ack_id,
        )
        if only_for and only_for != subscription:
            self._acknowledge(delivery)  # a redrive addressed to another subscription
            return None
        journal = self._journal
        if journal is None:
            return delivery
        record = journal.message(message_id)
        if record is None:
            # Published by another client: journal it, so log() and pending() can see it.
            record = self._adopt(journal, delivery, str(message.message_id))
        now = _iso(self._now())
        buried: list[str] = []

        def lease(current: dict[str, Any]) -> dict[str, Any] | None:
            buried.clear()
            if current["state"] in _TERMINAL_STATES:
                return None
            attempts = current["attempts"]
            if current["state"] == "leased" and attempts >= self.retry.max_attempts:
                # The last allowed attempt's lease expired: never hand it out again.
                detail = f"lease expired after {attempts} attempts (subscriber died?)"
                _append(current, attempts, "dead", detail, now)
                current.update(state="dead", detail=detail, updated_at=now)
                buried.append(detail)
                return current
            if current["state"] == "leased":
                detail = f"lease of attempt {attempts} expired (subscriber died?)"
                _append(current, attempts, "lease expired", detail, now)
                current["detail"] = detail
            current.update(state="leased", attempts=attempts + 1, updated_at=now)
            return current

        state = journal.update_delivery(message_id, subscription, lease)
        assert state is not None
        delivery = Delivery(
            **{
                **delivery.__dict__,
                "attempt": state["attempts"],
                "published_at": dt.datetime.fromisoformat(record["published_at"]),
            }
        )
        if buried:
            self._dead_letter(delivery, buried[-1])
            logger.warning("%s to %s dead-lettered: %s", message_id, subscription, buried[-1])
            return None
        if state["state"] in _TERMINAL_STATES:
            # Pub/Sub delivered again what this subscription already settled (a lost ack).
            self._acknowledge(delivery)
            logger.info(
                "%s to %s is %s already: acked again", message_id, subscription, state["state"]
            )
            return None
        return delivery

    def _adopt(self, journal: _Journal, delivery: Delivery, pubsub_id: str) -> dict[str, Any]:
        record = {
            "message_id": delivery.message_id,
            "topic": delivery.topic,
            "data": base64.b64encode(delivery.data).decode(),
            "attributes": delivery.attributes,
            "published_at": delivery.published_at.isoformat(),
            "pubsub_message_id": pubsub_id,
        }
        with contextlib.suppress(PreconditionFailed):  # another subscriber adopted it first
            journal.create_message(record)
        return record

    def _acknowledge(self, delivery: Delivery) -> None:
        self.subscriber.acknowledge(
            request={
                "subscription": self.subscription_path(delivery.subscription),
                "ack_ids": [delivery.ack_id],
            }
        )

    def _settle(
        self, delivery: Delivery, verb: str, state: str, outcome: str, detail: str, **extra: Any
    ) -> bool:
        """Record the outcome if `delivery` still holds its lease in the journal; True if so."""
        if self._journal is None:
            return True
        now = _iso(self._now())
        held: list[bool] = []

        def settle(current: dict[str, Any]) -> dict[str, Any] | None:
            if current["state"] != "leased" or current["attempts"] != delivery.attempt:
                held.append(False)
                logger.warning(
                    "%s of %s to %s (attempt %d) ignored: this handle no longer holds the lease;"
                    " the delivery is now %s at attempt %d",
                    verb,
                    delivery.message_id,
                    delivery.subscription,
                    delivery.attempt,
                    current["state"],
                    current["attempts"],
                )
                return None
            held.append(True)
            attempts = extra.get("attempts", current["attempts"])
            _append(current, attempts, outcome, detail, now)
            current.update(state=state, detail=detail, updated_at=now, attempts=attempts)
            return current

        self._journal.update_delivery(delivery.message_id, delivery.subscription, settle)
        return held[-1]

    def ack(self, delivery: Delivery, *, outcome: str = "done") -> None:
        """Acknowledge, and keep `outcome` in the journal; a no-op if the lease was lost."""
        if self._settle(delivery, "ack", "done", "done", outcome):
            self._acknowledge(delivery)

    def nack(self, delivery: Delivery, *, reason: str) -> None:
        """Due again after the backoff (the lease is set to it); dead-letter after the last try."""
        if delivery.attempt >= self.retry.max_attempts:
            if self._settle(delivery, "nack", "dead", "dead", reason):
                self._dead_letter(delivery, reason)
                logger.warning(
                    "%s to %s dead-lettered after %d attempts: %s",
                    delivery.message_id,
                    delivery.subscription,
                    delivery.attempt,
                    reason,
                )
            return
        backoff = self.retry.backoff(delivery.attempt).total_seconds()
        if not self._settle(delivery, "nack", "retrying", "retry", reason):
            return
        self.subscriber.modify_ack_deadline(
            request={
                "subscription": self.subscription_path(delivery.subscription),
                "ack_ids": [delivery.ack_id],
                "ack_deadline_seconds": int(min(max(backoff, 0), _MAX_ACK_DEADLINE_S)),
            }
        )
        logger.info(
            "%s to %s failed attempt %d (%s); due again in %.0f s",
            delivery.message_id,
            delivery.subscription,
            delivery.attempt,
            reason,
            backoff,
        )

    def park(self, delivery: Delivery, *, reason: str) -> None:
        """Publish to the dead-letter topic with `reason`, then ack: never retried."""
        if self._settle(delivery, "park", "dead", "parked", reason):
            self._dead_letter(delivery, reason)
            logger.warning(
                "%s to %s parked: %s", delivery.message_id, delivery.subscription, reason
            )

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        # Publish before the ack: a crash in between redelivers the message, it is not lost.
        self.publish(
            self.dead_letter_topic,
            delivery.data,
            {
                **delivery.attributes,
                "reason": reason[:_REASON_CHARS],
                "subscription": delivery.subscription,
                "attempts": str(delivery.attempt),
                ATTR_ORIGINAL_ID: delivery.message_id,
                ATTR_ORIGINAL_TOPIC: delivery.topic,
            },
            message_id=f"dead/{delivery.subscription}/{delivery.message_id}/{secrets.token_hex(4)}",
        )
        self._acknowledge(delivery)

    # -- the journal's views -------------------------------------------------------------------

    def get_message(self, message_id: str) -> tuple[str, bytes, dict[str, str]]:
        """(topic, data, attributes) of a published message; KeyError if unknown."""
        record = self._need_journal("get_message").message(message_id)
        if record is None:
            raise KeyError(f"unknown message {message_id!r}")
        return record["topic"], base64.b64decode(record["data"]), dict(record["attributes"])

    def dead_letters(self) -> list[BusRecord]:
        """Dead deliveries in publish order, and messages parked on the dead-letter topic by
        others (the push entry point) that no dead delivery here accounts for."""
        journal = self._need_journal("dead_letters")
        messages = journal.messages()
        by_id = {m["message_id"]: m for m in messages}
        order = {m["message_id"]: i for i, m in enumerate(messages)}
        dead = [d for d in journal.deliveries() if d["state"] == "dead"]
        records = [_bus_record(by_id[d["message_id"]], d) for d in dead if d["message_id"] in by_id]
        for message in messages:
            attributes = message["attributes"]
            if message["topic"] == self.dead_letter_topic and ATTR_ORIGINAL_ID not in attributes:
                records.append(
                    _bus_record(
                        message,
                        {
                            "subscription": attributes.get("service"),
                            "state": "dead",
                            "attempts": 0,
                            "detail": attributes.get("reason", ""),
                            "updated_at": message["published_at"],
                        },
                    )
                )
        return sorted(records, key=lambda r: (order[r.message_id], r.subscription or ""))

    def redrive(self, message_id: str, subscription: str | None = None) -> int:
        """Publish a dead message again to its dead subscriptions, attempts reset; how many."""
        journal = self._need_journal("redrive")
        record = journal.message(message_id)
        if record is None:
            return 0
        count = 0
        for delivery in journal.deliveries(message_id):
            name = delivery["subscription"]
            if delivery["state"] != "dead" or subscription not in (None, name):
                continue
            now = _iso(self._now())
            detail = f"redriven after {delivery['attempts']} attempts; attempts reset"

            def revive(
                current: dict[str, Any], detail: str = detail, now: str = now
            ) -> dict[str, Any] | None:
                if current["state"] != "dead":
                    return None
                _append(current, current["attempts"], "redriven", detail, now)
                current.update(state="pending", attempts=0, detail="redriven", updated_at=now)
                return current

            journal.update_delivery(message_id, name, revive)
            attributes = {**record["attributes"], ATTR_ID: message_id, ATTR_ONLY_FOR: name}
            try:
                self._send(record["topic"], base64.b64decode(record["data"]), attributes)
            except Exception:
                # Not sent: put the delivery back to dead, so a later redrive finds it.
                journal.update_delivery(
                    message_id, name, lambda c: {**c, "state": "dead", "detail": "redrive failed"}
                )
                raise
            count += 1
        return count

    def log(self, *, limit: int = 100, topic: str | None = None) -> list[BusRecord]:
        """The newest `limit` journalled messages, newest first, one record per subscription.

        A message no subscription receives gives one record with state "published"; a
        subscription that has not pulled a message yet shows it "pending".
        """
        if limit < 0:
            raise ValueError(f"limit must not be negative, not {limit}")
        journal = self._need_journal("log")
        messages = [m for m in journal.messages() if topic is None or m["topic"] == topic]
        newest = list(reversed(messages))[:limit]
        wanted = {m["message_id"] for m in newest}
        deliveries: dict[str, dict[str, dict[str, Any]]] = {}
        for delivery in journal.deliveries():
            if delivery["message_id"] in wanted:
                deliveries.setdefault(delivery["message_id"], {})[delivery["subscription"]] = (
                    delivery
                )
        records = []
        for message in newest:
            known = deliveries.get(message["message_id"], {})
            names = {s for s, t in self.subscriptions.items() if t == message["topic"]}
            names |= set(known)
            if not names:
                records.append(_bus_record(message, None))
            for name in sorted(names):
                records.append(_bus_record(message, known.get(name) or _pending(name)))
        return records

    def pending(self, subscriptions: list[str] | None = None) -> int:
        """Journalled deliveries not yet done or dead, of these subscriptions or all."""
        journal = self._need_journal("pending")
        names = subscriptions if subscriptions is not None else list(self.subscriptions)
        states = {(d["message_id"], d["subscription"]): d["state"] for d in journal.deliveries()}
        count = 0
        for message in journal.messages():
            for name in names:
                if self.subscriptions.get(name) != message["topic"]:
                    continue
                if states.get((message["message_id"], name), "pending") in _OPEN_STATES:
                    count += 1
        return count

    def history(self, message_id: str) -> list[dict[str, Any]]:
        """Every settled attempt of a message, oldest first; KeyError if the message is unknown.

        Keys as in the local bus: subscription, attempt, outcome, detail, at (UTC datetime).
        """
        journal = self._need_journal("history")
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
            {k: e[k] for k in ("subscription", "attempt", "outcome", "detail", "at")}
            for e in entries
        ]


_SEQ = iter(range(1, 2**62))  # orders history entries written in the same microsecond
_SEQ_LOCK = threading.Lock()


def _append(record: dict[str, Any], attempt: int, outcome: str, detail: str, at: str) -> None:
    with _SEQ_LOCK:
        seq = next(_SEQ)
    record["history"].append(
        {"attempt": attempt, "outcome": outcome, "detail": detail, "at": at, "seq": seq}
    )


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()


def _plain_datetime(value: Any) -> dt.datetime:
    # The client returns DatetimeWithNanoseconds; the port's records carry plain datetimes.
    if not isinstance(value, dt.datetime):
        return _utc_now()
    moment = value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime(*moment.timetuple()[:6], moment.microsecond, tzinfo=dt.UTC)


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
