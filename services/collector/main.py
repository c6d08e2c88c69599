"""Cloud Functions / Cloud Run entry point of the collector: target `handle`."""

from __future__ import annotations

import functions_framework
from cloudevents.http.event import CloudEvent

from cashmatch.entrypoints.cloud_event import handle_cloud_event
from cashmatch.service_layer.handlers.collector import collect


@functions_framework.cloud_event
def handle(cloud_event: CloudEvent) -> None:
    """One event in, one handler call; errors map to park (2xx) or retry (5xx)."""
    handle_cloud_event("collector", collect, cloud_event)
