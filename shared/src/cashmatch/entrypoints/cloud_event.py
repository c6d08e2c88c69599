"""The Cloud Functions / Cloud Run edge: a CloudEvent in, one handler call, an HTTP status out.

A Pub/Sub push arrives as a `google.cloud.pubsub.topic.v1.messagePublished` CloudEvent whose
`message.data` (base64) holds our event; a CloudEvent of our own types may also be posted
directly (structured or binary mode). Permanent failures are parked on the dead-letter topic
and answered 2xx so Pub/Sub does not retry them forever; anything else raises (HTTP 500) and
Pub/Sub redelivers with its retry policy.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from typing import Any

from cashmatch.bootstrap import bootstrap
from cashmatch.domain.events import TYPE_PREFIX, MalformedEvent, parse_event
from cashmatch.domain.subscriptions import DEAD_LETTER_TOPIC
from cashmatch.entrypoints.push_auth import PushAuth, PushForbidden, PushUnauthorized, verify_push
from cashmatch.service_layer.alerting import alert_for_parked_push
from cashmatch.service_layer.context import Ports
from cashmatch.service_layer.dispatch import Handler, Park, handle_bytes
from cashmatch.settings import load_settings

log = logging.getLogger(__name__)
PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"

_ports: Ports | None = None


def ports() -> Ports:
    """Built on the first event, not at import: cold starts stay fast, tests stay isolated."""
    global _ports
    if _ports is None:
        _ports = bootstrap(load_settings())
    return _ports


def reset_ports(value: Ports | None = None) -> None:
    """Replace the process's ports (tests)."""
    global _ports
    _ports = value


def event_bytes(cloud_event: Any) -> tuple[bytes, dict[str, str]]:
    """Our event's bytes and the message attributes, from either delivery shape."""
    ce_type = cloud_event["type"]
    data = cloud_event.data
    if ce_type == PUBSUB_TYPE:
        if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
            raise Park("Pub/Sub push body has no 'message' object")
        message = data["message"]
        try:
            raw = base64.b64decode(message.get("data", ""), validate=True)
        except (binascii.Error, TypeError) as exc:
            raise Park(f"message.data is not base64: {exc}") from None
        attributes = {str(k): str(v) for k, v in (message.get("attributes") or {}).items()}
        attributes["pubsub_message_id"] = str(
            message.get("messageId") or message.get("message_id") or ""
        )
        return raw, attributes
    if ce_type.startswith(TYPE_PREFIX):
        envelope = {
            "specversion": "1.0",
            "id": cloud_event["id"],
            "type": ce_type,
            "source": cloud_event["source"],
            "time": cloud_event.get("time"),
            "subject": cloud_event.get("subject"),
            "datacontenttype": "application/json",
            "data": data,
        }
        return json.dumps(envelope).encode(), {"ce-type": ce_type, "ce-id": cloud_event["id"]}
    raise Park(f"unexpected CloudEvent type {ce_type!r}")


def _service_for(
    service: str | Mapping[str, str], raw: bytes, attributes: Mapping[str, str]
) -> str:
    """A function serving several subscriptions picks one by the event's own topic."""
    if isinstance(service, str):
        return service
    try:
        topic = parse_event(raw, attributes).topic
    except MalformedEvent as exc:
        raise Park(f"MalformedEvent: {exc}") from None
    if topic not in service:
        raise Park(f"this function takes {', '.join(service)} events, got {topic}")
    return service[topic]


def check_push_token(current: Ports) -> None:
    """With CASHMATCH_PUSH_AUDIENCE set, refuse a request without Pub/Sub's OIDC token: 401 for
    a missing or invalid token, 403 for one meant for someone else."""
    settings = current.settings
    if not settings.push_audience:
        return
    import flask

    auth = PushAuth(
        audience=settings.push_audience,
        service_account=settings.push_service_account or None,
        certs_url=settings.push_certs_url,
    )
    try:
        verify_push(dict(flask.request.headers), auth)
    except PushUnauthorized as exc:
        log.warning("push refused (401): %s", exc)
        flask.abort(401, description=str(exc))
    except PushForbidden as exc:
        log.warning("push refused (403): %s", exc)
        flask.abort(403, description=str(exc))


def handle_cloud_event(service: str | Mapping[str, str], handler: Handler, cloud_event: Any) -> str:
    """Check the push token, decode, run `handler`, and park what can never succeed.

    `service` is a subscription name, or a map topic → subscription for a function that serves
    several topics (the alerter, whose one handler takes all of them)."""
    current = ports()
    check_push_token(current)
    raw = b""
    attributes: dict[str, str] = {}
    name = service if isinstance(service, str) else ",".join(service.values())
    try:
        raw, attributes = event_bytes(cloud_event)
        name = _service_for(service, raw, attributes)
        outcome = handle_bytes(name, handler, raw, current, attributes)
    except Park as exc:
        reason = str(exc)
        log.warning("%s parked event %s: %s", name, cloud_event["id"], reason)
        current.bus.publish(
            DEAD_LETTER_TOPIC,
            raw or json.dumps({"cloud_event_id": cloud_event["id"]}).encode(),
            {**attributes, "reason": reason[:1000], "service": name},
            message_id=f"dead/{name}/{cloud_event['id']}",
        )
        current.notifier.notify(
            alert_for_parked_push(
                name, str(cloud_event["id"]), reason, month=attributes.get("month") or None
            )
        )
        return f"parked: {reason}"
    log.info("%s handled %s: %s", name, cloud_event["id"], outcome)
    return outcome
