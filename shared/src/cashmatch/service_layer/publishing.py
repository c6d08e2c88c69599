"""Publishing events on whatever bus the stack has."""

from __future__ import annotations

from cashmatch.domain.events import Envelope, Payload, derived_id, make_event
from cashmatch.ports import EventBus
from cashmatch.service_layer.context import Ports


def publish_event(bus: EventBus, event: Envelope) -> bool:
    """Put an event on its topic; False when an event with this id was already published."""
    return bus.publish(event.topic, event.to_bytes(), event.attributes(), message_id=event.id)


def already_published(bus: EventBus, event_id: str) -> bool:
    """True when the bus holds an event with this id (a redelivery answering again)."""
    try:
        bus.get_message(event_id)
    except KeyError:
        return False
    return True


def publish_answer(
    ports: Ports, cause: Envelope, payload: Payload, source: str, *, event_id: str | None = None
) -> Envelope:
    """Publish a handler's answer with an id derived from its cause, so redelivery is a no-op."""
    event = make_event(
        payload,
        source=source,
        event_id=event_id or derived_id(cause.id, payload.topic),
        now=ports.clock(),
    )
    if not already_published(ports.bus, event.id):
        publish_event(ports.bus, event)
    return event
