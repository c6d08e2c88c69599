"""Alerter: rejections, deployments and drift → a notification for a person."""

from __future__ import annotations

import contextlib

from cashmatch.domain.events import Envelope
from cashmatch.ports import PreconditionFailed
from cashmatch.service_layer.alerting import alert_for_event
from cashmatch.service_layer.context import Ports


class AlertNotDelivered(RuntimeError):
    """A notifier could not deliver the alert (a webhook down or refusing): the bus retries
    with backoff, and parks the event, visibly, when it keeps failing."""


def sent_key(event_id: str) -> str:
    """Blob key marking that the alert of an event got through."""
    return f"alerts/sent/{event_id}"


def alert(event: Envelope, ports: Ports) -> str:
    """Tell the notifier; an alert that did not get through is tried again by the bus, one that
    did is not sent again when the event is delivered again later. At least once, not exactly:
    two deliveries at the same moment, or a crash between sending and marking, send it twice."""
    message = alert_for_event(event)
    if message is None:
        return f"nothing to tell about {event.type}"
    if ports.blobs.exists(sent_key(event.id)):
        return f"already alerted: {message.title}"
    if not ports.notifier.notify(message):
        raise AlertNotDelivered(f"alert {message.title!r} not delivered (see the log for why)")
    # A concurrent delivery of the same event may have marked it first: either mark will do.
    with contextlib.suppress(PreconditionFailed):
        ports.blobs.put(sent_key(event.id), message.title.encode(), if_generation_match=0)
    return f"alerted: {message.title}"
