"""Cloud Functions / Cloud Run entry point of the deployer: target `handle`."""

from __future__ import annotations

import functions_framework
from cloudevents.http.event import CloudEvent

from cashmatch.domain.events import Envelope
from cashmatch.entrypoints.cloud_event import handle_cloud_event
from cashmatch.service_layer.context import Ports
from cashmatch.service_layer.handlers.deployer import deploy
from cashmatch.service_layer.handlers.guardrail import guard

# One service behind two push subscriptions: roll-outs, and the guardrail acting on a breach.
SUBSCRIPTION_BY_TOPIC = {"evaluation.passed": "deployer", "performance.breached": "guardrail"}


def _handler(event: Envelope, ports: Ports) -> str:
    return guard(event, ports) if event.topic == "performance.breached" else deploy(event, ports)


@functions_framework.cloud_event
def handle(cloud_event: CloudEvent) -> None:
    """One event in, one handler call; errors map to park (2xx) or retry (5xx)."""
    handle_cloud_event(SUBSCRIPTION_BY_TOPIC, _handler, cloud_event)
