"""Alerter: rejections, deployments and drift → a notification for a person."""

from __future__ import annotations

from shared.alerts import alert_for_event
from shared.bootstrap import Ports
from shared.events import Envelope


def alert(event: Envelope, ports: Ports) -> str:
    """Tell the notifier; a notifier failure is logged by the notifier and never raises."""
    message = alert_for_event(event)
    if message is None:
        return f"nothing to tell about {event.type}"
    ports.notifier.notify(message)
    return f"alerted: {message.title}"
