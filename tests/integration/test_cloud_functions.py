"""Each service's CloudEvent function, in process, through functions-framework's test client,
with the shapes Pub/Sub push really delivers."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent
from functions_framework import create_app

from cashmatch.domain.events import MonthClosed, make_event
from cashmatch.domain.subscriptions import DEAD_LETTER_TOPIC
from cashmatch.entrypoints import cloud_event as entrypoint

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PUBSUB = "google.cloud.pubsub.topic.v1.messagePublished"


def client(service: str):
    return create_app(
        target="handle", source=str(ROOT / "services" / service / "main.py")
    ).test_client()


def pubsub_event(data: bytes, attributes: dict | None = None) -> CloudEvent:
    return CloudEvent(
        {"type": PUBSUB, "source": "//pubsub.googleapis.com/projects/p/topics/month.closed"},
        {
            "message": {
                "data": base64.b64encode(data).decode(),
                "attributes": attributes or {},
                "messageId": "123",
            },
            "subscription": "projects/p/subscriptions/collector",
        },
    )


@pytest.fixture
def ports(make_ports, small_warehouse):
    built = make_ports(warehouse=str(small_warehouse))
    entrypoint.reset_ports(built)
    yield built
    entrypoint.reset_ports(None)


def dead_letters(ports):
    return [r for r in ports.bus.log(limit=50, topic=DEAD_LETTER_TOPIC)]


def test_binary_pubsub_push_runs_the_collector(ports):
    event = make_event(MonthClosed(month="2025-03"), source="/test")
    headers, body = to_binary(pubsub_event(event.to_bytes(), event.attributes()))
    response = client("collector").post("/", headers=headers, data=body)
    assert response.status_code == 200
    ready = ports.bus.log(topic="dataset.ready")
    assert len({r.message_id for r in ready}) == 1
    assert ready[0].attributes["month"] == "2025-03"


def test_structured_cloudevent_of_our_own_type_is_accepted(ports):
    event = CloudEvent(
        {"type": MonthClosed.event_type(), "source": "/finance-system", "subject": "2025-02"},
        {"month": "2025-02"},
    )
    headers, body = to_structured(event)
    response = client("collector").post("/", headers=headers, data=body)
    assert response.status_code == 200
    assert len({r.message_id for r in ports.bus.log(topic="dataset.ready")}) == 1


def test_raw_push_body_without_cloudevent_headers(ports):
    event = make_event(MonthClosed(month="2025-03"), source="/test")
    body = {
        "message": {
            "data": base64.b64encode(event.to_bytes()).decode(),
            "messageId": "9",
            "attributes": {},
            "publishTime": "2025-04-01T00:00:00Z",
        },
        "subscription": "projects/p/subscriptions/collector",
    }
    response = client("collector").post("/", json=body)
    assert response.status_code == 200
    assert len({r.message_id for r in ports.bus.log(topic="dataset.ready")}) == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", "not JSON"),
        (json.dumps({"hello": 1}).encode(), "not a CloudEvents 1.0 envelope"),
        (make_event(MonthClosed(month="2031-01"), source="/t").to_bytes(), "not over yet"),
        (
            make_event(MonthClosed(month="2019-01"), source="/t").to_bytes(),
            "no transfers booked in 2019-01",
        ),
    ],
)
def test_bad_events_are_parked_with_their_reason_and_not_retried(ports, data, reason):
    headers, body = to_binary(pubsub_event(data))
    response = client("collector").post("/", headers=headers, data=body)
    assert response.status_code == 200  # 2xx: Pub/Sub must not redeliver it
    parked = dead_letters(ports)
    assert len(parked) == 1
    assert reason in parked[0].attributes["reason"]
    assert ports.bus.log(topic="dataset.ready") == []


def test_wrong_event_type_for_the_service_is_parked(ports):
    event = make_event(MonthClosed(month="2025-03"), source="/t")
    headers, body = to_binary(pubsub_event(event.to_bytes()))
    response = client("trainer").post("/", headers=headers, data=body)
    assert response.status_code == 200
    assert "trainer takes dataset.ready events" in dead_letters(ports)[0].attributes["reason"]


def test_a_transient_failure_answers_500_so_pubsub_retries(ports, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk hiccup")

    monkeypatch.setattr(ports.datasets, "write_slice", broken)
    event = make_event(MonthClosed(month="2025-03"), source="/t")
    headers, body = to_binary(pubsub_event(event.to_bytes()))
    response = client("collector").post("/", headers=headers, data=body)
    assert response.status_code == 500
    assert dead_letters(ports) == []


def test_a_binary_mode_cloudevent_in_a_pubsub_push_runs_the_collector(ports):
    """The CloudEvents Pub/Sub binding's binary content mode (context as ce-* attributes, the
    data alone in the message), as a finance system using a CloudEvents SDK publishes it."""
    attributes = {
        "ce-specversion": "1.0",
        "ce-type": MonthClosed.event_type(),
        "ce-id": "finance-2025-03",
        "ce-source": "/finance-system",
        "ce-time": "2025-04-01T06:00:00Z",
        "content-type": "application/json",
    }
    headers, body = to_binary(pubsub_event(b'{"month": "2025-03"}', attributes))
    response = client("collector").post("/", headers=headers, data=body)
    assert response.status_code == 200
    assert dead_letters(ports) == []
    ready = ports.bus.log(topic="dataset.ready")
    assert len({r.message_id for r in ready}) == 1 and ready[0].attributes["month"] == "2025-03"


def test_a_parked_push_alerts_that_it_is_not_retried(ports):
    import dataclasses

    sent = []

    class Recording:
        def notify(self, alert):
            sent.append(alert)
            return True

    entrypoint.reset_ports(dataclasses.replace(ports, notifier=Recording()))
    headers, body = to_binary(pubsub_event(b"not json"))
    assert client("collector").post("/", headers=headers, data=body).status_code == 200
    (alert,) = sent
    assert alert.kind == "dead_letter"
    assert any("it is not retried" in line for line in alert.details)
    assert not any("retried with backoff" in line for line in alert.details)
