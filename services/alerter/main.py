"""Cloud Functions / Cloud Run entry point of the alerter: target `handle`."""

from __future__ import annotations

import functions_framework
from cloudevents.http.event import CloudEvent

from cashmatch.entrypoints.cloud_event import handle_cloud_event
from cashmatch.service_layer.handlers.alerter import alert

# One function behind four push subscriptions: the event's own topic picks the subscription.
SUBSCRIPTION_BY_TOPIC = {
    "evaluation.rejected": "alert-rejected",
    "model.deployed": "alert-deployed",
    "drift.detected": "alert-drift",
    "performance.breached": "alert-breached",
}


@functions_framework.cloud_event
def handle(cloud_event: CloudEvent) -> None:
    """One alert-worthy event in, one notification out."""
    handle_cloud_event(SUBSCRIPTION_BY_TOPIC, alert, cloud_event)
