"""What the Pub/Sub bus puts on the wire beyond the port's message: its attributes, Pub/Sub's
lease limits, and a received message turned into the port's Delivery."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from cashmatch.ports import Delivery

ATTR_ID = "cashmatch_id"
ATTR_ONLY_FOR = "cashmatch_only_for"
ATTR_ORIGINAL_ID = "cashmatch_original_id"
ATTR_ORIGINAL_TOPIC = "cashmatch_original_topic"
_INTERNAL = (ATTR_ID, ATTR_ONLY_FOR)

MAX_ACK_DEADLINE_S = 600  # Pub/Sub's limit for a lease
MIN_ACK_DEADLINE_S = 10
_REASON_CHARS = 1000  # attribute values are limited to 1024 bytes


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _plain_datetime(value: Any) -> dt.datetime:
    # The client returns DatetimeWithNanoseconds; the port's records carry plain datetimes.
    if not isinstance(value, dt.datetime):
        return utc_now()
    moment = value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime(*moment.timetuple()[:6], moment.microsecond, tzinfo=dt.UTC)


def received_delivery(received: Any, subscription: str, topic: str) -> tuple[Delivery, str | None]:
    """(the Delivery of a pulled message, the subscription a redrive addressed it to, if any)."""
    message = received.message
    attributes = dict(message.attributes)
    message_id = attributes.get(ATTR_ID) or str(message.message_id)
    only_for = attributes.get(ATTR_ONLY_FOR)
    for name in _INTERNAL:
        attributes.pop(name, None)
    delivery = Delivery(
        message_id=message_id,
        topic=topic,
        subscription=subscription,
        data=bytes(message.data),
        attributes=attributes,
        attempt=max(int(received.delivery_attempt), 1),
        published_at=_plain_datetime(message.publish_time),
        ack_id=received.ack_id,
    )
    return delivery, only_for


def dead_letter_attributes(delivery: Delivery, reason: str) -> dict[str, str]:
    """The attributes a dead-lettered copy carries: the original's, and why and where it died."""
    return {
        **delivery.attributes,
        "reason": reason[:_REASON_CHARS],
        "subscription": delivery.subscription,
        "attempts": str(delivery.attempt),
        ATTR_ORIGINAL_ID: delivery.message_id,
        ATTR_ORIGINAL_TOPIC: delivery.topic,
    }


def dead_letter_id(delivery: Delivery) -> str:
    """A fresh id for each dead-lettered copy: a message may die again after a redrive."""
    return f"dead/{delivery.subscription}/{delivery.message_id}/{secrets.token_hex(4)}"
