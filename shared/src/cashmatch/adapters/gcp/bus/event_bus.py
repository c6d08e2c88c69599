"""PubSubEventBus: the EventBus port on Pub/Sub topics and pull subscriptions, with the journal
closing the gaps between Pub/Sub's semantics and the port's."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from google.api_core import exceptions as gexc

from cashmatch.adapters.gcp.bus.journal import TERMINAL_STATES, Journal, iso
from cashmatch.adapters.gcp.bus.transitions import Lease, Revive, Settle, redrive_failed
from cashmatch.adapters.gcp.bus.views import (
    attempt_history,
    dead_letter_records,
    log_records,
    message_of,
    pending_count,
)
from cashmatch.adapters.gcp.bus.wire import (
    ATTR_ID,
    ATTR_ONLY_FOR,
    MAX_ACK_DEADLINE_S,
    MIN_ACK_DEADLINE_S,
    dead_letter_attributes,
    dead_letter_id,
    received_delivery,
    utc_now,
)
from cashmatch.ports import BlobStore, BusRecord, Delivery, PreconditionFailed, RetryPolicy

logger = logging.getLogger(__name__)


class PubSubEventBus:
    """The EventBus port on Pub/Sub topics and pull subscriptions, as far as Pub/Sub allows.

    `subscriptions` maps subscription names to topic names (both Pub/Sub ids in `project`).
    `retry` gives the attempts before the dead letter, the nack backoffs and the lease that
    `ensure_topology` sets as the subscriptions' ack deadline (clamped to 10-600 s).

    Pub/Sub delivers at least once, like the local bus, but differs from the port in four ways,
    and this adapter closes each gap as follows:

    - Pub/Sub assigns its own message ids and never deduplicates publishes. Our id travels as
      the attribute `cashmatch_id`, and a publish first creates `bus/messages/<id>.json` in the
      journal (a BlobStore, the bucket on the gcp stack) with "only if absent", so a second
      publish of the same id is ignored. Two publishers racing with one id may both send (at
      least once).
    - Pub/Sub keeps no per-message log, outcome or history. The journal does: one object per
      message and one per (message, subscription), updated on pull, ack, nack and park by
      compare-and-swap. `log`, `dead_letters`, `history` and `pending` read it, so they know
      what went through this adapter: push deliveries to Cloud Run are settled by HTTP status
      and are not recorded there (use Cloud Monitoring's num_undelivered_messages for push
      backlogs), and messages published by other clients appear once pulled here.
    - A nack cannot carry a backoff: the lease is set to the backoff instead
      (modify-ack-deadline, 0 to 600 s), which makes the message due again then. The attempt
      count comes from the journal (Pub/Sub counts attempts only with a dead-letter policy);
      after the last attempt, or on park, the message is published to the dead-letter topic
      with a `reason` attribute, then acked.
    - A delivered message cannot be un-acked, so `redrive` publishes the message again with the
      attribute `cashmatch_only_for=<subscription>`; this adapter's pull acks and skips a
      message addressed to another subscription. (Push subscriptions need the matching filter:
      `NOT attributes:cashmatch_only_for OR attributes.cashmatch_only_for = "<name>"`.)

    Without a journal (`journal=None`) the bus still publishes, pulls and settles, but cannot
    deduplicate, and `log`, `dead_letters`, `history`, `get_message`, `redrive` and `pending`
    raise NotImplementedError rather than answer wrongly.
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
        clock: Callable[[], dt.datetime] = utc_now,
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
        self._journal = Journal(journal) if journal is not None else None

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
        deadline = int(min(max(self.retry.lease_s, MIN_ACK_DEADLINE_S), MAX_ACK_DEADLINE_S))
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

    def _need_journal(self, what: str) -> Journal:
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
        """The delivery of a pulled message, leased in the journal; None if it is acked and
        skipped instead (addressed elsewhere, settled already, or dead on its last lease)."""
        delivery, only_for = received_delivery(
            received, subscription, self.subscriptions[subscription]
        )
        if only_for and only_for != subscription:
            self._acknowledge(delivery)  # a redrive addressed to another subscription
            return None
        journal = self._journal
        if journal is None:
            return delivery
        record = journal.message(delivery.message_id)
        if record is None:
            # Published by another client: journal it, so log() and pending() can see it.
            record = self._adopt(journal, delivery, str(received.message.message_id))
        lease = Lease(self.retry.max_attempts, iso(self._now()))
        state = journal.update_delivery(delivery.message_id, subscription, lease)
        assert state is not None
        delivery = Delivery(
            **{
                **delivery.__dict__,
                "attempt": state["attempts"],
                "published_at": dt.datetime.fromisoformat(record["published_at"]),
            }
        )
        if lease.buried is not None:
            self._dead_letter(delivery, lease.buried)
            logger.warning(
                "%s to %s dead-lettered: %s", delivery.message_id, subscription, lease.buried
            )
            return None
        if state["state"] in TERMINAL_STATES:
            # Pub/Sub delivered again what this subscription already settled (a lost ack).
            self._acknowledge(delivery)
            logger.info(
                "%s to %s is %s already: acked again",
                delivery.message_id,
                subscription,
                state["state"],
            )
            return None
        return delivery

    def _adopt(self, journal: Journal, delivery: Delivery, pubsub_id: str) -> dict[str, Any]:
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

    # -- settling ------------------------------------------------------------------------------

    def _acknowledge(self, delivery: Delivery) -> None:
        self.subscriber.acknowledge(
            request={
                "subscription": self.subscription_path(delivery.subscription),
                "ack_ids": [delivery.ack_id],
            }
        )

    def _settle(self, delivery: Delivery, verb: str, state: str, outcome: str, detail: str) -> bool:
        """Record the outcome if `delivery` still holds its lease in the journal; True if so."""
        if self._journal is None:
            return True
        settle = Settle(delivery, verb, state, outcome, detail, iso(self._now()))
        self._journal.update_delivery(delivery.message_id, delivery.subscription, settle)
        return settle.held

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
                "ack_deadline_seconds": int(min(max(backoff, 0), MAX_ACK_DEADLINE_S)),
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
            dead_letter_attributes(delivery, reason),
            message_id=dead_letter_id(delivery),
        )
        self._acknowledge(delivery)

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
            detail = f"redriven after {delivery['attempts']} attempts; attempts reset"
            journal.update_delivery(message_id, name, Revive(detail, iso(self._now())))
            attributes = {**record["attributes"], ATTR_ID: message_id, ATTR_ONLY_FOR: name}
            try:
                self._send(record["topic"], base64.b64decode(record["data"]), attributes)
            except Exception:
                journal.update_delivery(message_id, name, redrive_failed)
                raise
            count += 1
        return count

    # -- the journal's views -------------------------------------------------------------------

    def get_message(self, message_id: str) -> tuple[str, bytes, dict[str, str]]:
        """(topic, data, attributes) of a published message; KeyError if unknown."""
        return message_of(self._need_journal("get_message"), message_id)

    def dead_letters(self) -> list[BusRecord]:
        """Dead deliveries in publish order, and messages parked on the dead-letter topic by
        others (the push entry point) that no dead delivery here accounts for."""
        return dead_letter_records(self._need_journal("dead_letters"), self.dead_letter_topic)

    def log(self, *, limit: int = 100, topic: str | None = None) -> list[BusRecord]:
        """The newest `limit` journalled messages, newest first, one record per subscription.

        A message no subscription receives gives one record with state "published"; a
        subscription that has not pulled a message yet shows it "pending".
        """
        if limit < 0:
            raise ValueError(f"limit must not be negative, not {limit}")
        journal = self._need_journal("log")
        return log_records(journal, self.subscriptions, limit=limit, topic=topic)

    def pending(self, subscriptions: list[str] | None = None) -> int:
        """Journalled deliveries not yet done or dead, of these subscriptions or all."""
        journal = self._need_journal("pending")
        names = subscriptions if subscriptions is not None else list(self.subscriptions)
        return pending_count(journal, self.subscriptions, names)

    def history(self, message_id: str) -> list[dict[str, Any]]:
        """Every settled attempt of a message, oldest first; KeyError if the message is unknown.

        Keys as in the local bus: subscription, attempt, outcome, detail, at (UTC datetime).
        """
        return attempt_history(self._need_journal("history"), message_id)
