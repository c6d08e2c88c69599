"""Alerter: rejections, deployments and drift → a notification for a person."""

from __future__ import annotations

from shared.alerts import alert_for_event
from shared.bootstrap import Ports
from shared.events import Envelope


class AlertNotDelivered(RuntimeError):
    """A notifier could not deliver the alert (a webhook down or refusing): the bus retries
    with backoff, and parks the event, visibly, when it keeps failing."""


def alert(event: Envelope, ports: Ports) -> str:
    """Tell the notifier; an alert that did not get through is tried again by the bus."""
    message = alert_for_event(event)
    if message is None:
        return f"nothing to tell about {event.type}"
    if not ports.notifier.notify(message):
        raise AlertNotDelivered(f"alert {message.title!r} not delivered (see the log for why)")
    return f"alerted: {message.title}"
