"""Cloud Functions / Cloud Run entry point of the monitor: target `handle`."""

from __future__ import annotations

import functions_framework
from cloudevents.http.event import CloudEvent

from cashmatch.domain.events import Envelope
from cashmatch.entrypoints.cloud_event import handle_cloud_event
from cashmatch.service_layer.context import Ports
from cashmatch.service_layer.handlers.estimator import estimate_after_rollout
from cashmatch.service_layer.handlers.monitor import monitor

# One service behind two push subscriptions: each close, and the estimate at each roll-out
# (both need the model; the deployer's image has none).
SUBSCRIPTION_BY_TOPIC = {"dataset.ready": "monitor", "model.deployed": "estimator"}


def _handler(event: Envelope, ports: Ports) -> str:
    if event.topic == "model.deployed":
        return estimate_after_rollout(event, ports)
    return monitor(event, ports)


@functions_framework.cloud_event
def handle(cloud_event: CloudEvent) -> None:
    """One event in, one handler call; errors map to park (2xx) or retry (5xx)."""
    handle_cloud_event(SUBSCRIPTION_BY_TOPIC, _handler, cloud_event)
