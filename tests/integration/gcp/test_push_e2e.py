"""Pub/Sub push, end to end over real HTTP: the collector runs as its own functions-framework
process with the gcp stack's environment (BigQuery, Cloud Storage and Pub/Sub emulated), and a
small pusher in the test does what Pub/Sub's push delivery does, which no emulator here does:
pull the subscription, POST each message as a push envelope with an OIDC token, ack on 2xx.

What it shows: a month.closed published through PubSubEventBus comes back as dataset.ready on
Pub/Sub; a bad envelope is answered 2xx and parked on the dead-letter topic (so Pub/Sub does
not retry it for days); a push without the right token is refused 401/403 and stays unacked
for Pub/Sub to retry. Tokens are signed with a test key whose certificate a local server
stands in for Google's (tests/integration/test_push_auth.py)."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cashmatch.domain.events import MonthClosed, make_event, parse_event
from cashmatch.service_layer.publishing import publish_event
from tests.fakes.pubsub_server import PubSubServer, start_pubsub_server
from tests.integration.test_push_auth import (
    ACCOUNT,
    AUDIENCE,
    certs_url,  # noqa: F401 (a fixture)
    signing_key,  # noqa: F401 (a fixture)
    token,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
PROJECT = "test-project"
DEAD_LETTER_INBOX = "dead-letter-inbox"  # as in the Terraform: a person's view of dead letters
_START_TIMEOUT_S = 120.0  # functions-framework imports every handler; slow on a busy runner
_PUSH_TIMEOUT_S = 300.0  # Pub/Sub waits up to the ack deadline (600 s in the Terraform)


@dataclass
class Stack:
    """The emulated gcp stack, the collector's HTTP server, and a test-side bus and clients."""

    ports: Any
    pubsub: PubSubServer
    url: str
    log: Path
    signer: Any

    def path(self, subscription: str) -> str:
        return f"projects/{PROJECT}/subscriptions/{subscription}"

    def bearer(self, **claims: Any) -> str:
        return f"Bearer {token(self.signer, **claims)}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_serving(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            httpx.get(url, timeout=1.0)  # any answer at all: the server is up
            return
        except httpx.TransportError:
            time.sleep(0.2)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
    raise RuntimeError(f"functions-framework did not start (exit {process.poll()}):\n{tail}")


@pytest.fixture(scope="module")
def stack(request, gcs_emulator, bq_emulator, tmp_path_factory) -> Iterator[Stack]:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage
    from test_gcp_chain import load_warehouse

    from cashmatch.bootstrap import bootstrap
    from cashmatch.settings import load_settings
    from cashmatch.synth import SynthConfig, generate

    signer = request.getfixturevalue("signing_key")[0]
    certs = request.getfixturevalue("certs_url")
    pubsub = start_pubsub_server()
    emulators = {
        "PUBSUB_EMULATOR_HOST": pubsub.host,
        "STORAGE_EMULATOR_HOST": gcs_emulator.host,
        "BIGQUERY_EMULATOR_HOST": bq_emulator.host,
    }
    with pytest.MonkeyPatch.context() as env:
        for name, value in emulators.items():
            env.setenv(name, value)
        bucket = f"push-{uuid.uuid4().hex[:12]}"
        storage.Client(project="test", credentials=AnonymousCredentials()).create_bucket(bucket)
        dataset = f"{bq_emulator.project}.push_{uuid.uuid4().hex[:12]}"
        data = generate(SynthConfig(months=2, start="2025-01", scale=0.2))
        load_warehouse(bq_emulator.client(), dataset, data)
        service_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CASHMATCH_")},
            "CASHMATCH_STACK": "gcp",
            "CASHMATCH_PROJECT": PROJECT,
            "CASHMATCH_BUCKET": bucket,
            "CASHMATCH_WAREHOUSE": dataset,
            "CASHMATCH_PUSH_AUDIENCE": AUDIENCE,
            "CASHMATCH_PUSH_SERVICE_ACCOUNT": ACCOUNT,
            "CASHMATCH_PUSH_CERTS_URL": certs,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        port = _free_port()
        log = tmp_path_factory.mktemp("collector") / "functions-framework.log"
        argv = [
            str(Path(sys.executable).parent / "functions-framework"),
            "--target=handle",
            "--signature-type=cloudevent",
            "--source=services/collector/main.py",
            "--host=127.0.0.1",
            f"--port={port}",
        ]
        with open(log, "wb") as out:
            process = subprocess.Popen(argv, cwd=REPO, env=service_env, stdout=out, stderr=out)
        ports = None
        try:
            url = f"http://127.0.0.1:{port}/"
            _wait_until_serving(process, url, log)
            settings = load_settings(
                stack="gcp", project=PROJECT, bucket=bucket, warehouse=dataset, min_backoff_s=0.0
            )
            ports = bootstrap(settings)  # creates the topics and subscriptions
            ports.bus.subscriber.create_subscription(
                request={
                    "name": f"projects/{PROJECT}/subscriptions/{DEAD_LETTER_INBOX}",
                    "topic": f"projects/{PROJECT}/topics/dead-letter",
                }
            )
            yield Stack(ports=ports, pubsub=pubsub, url=url, log=log, signer=signer)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if ports is not None:
                ports.bus.close()
            pubsub.stop()


def envelope(message: Any, subscription: str) -> dict[str, Any]:
    """The JSON body of a Pub/Sub push (wrapped, as the Terraform's subscriptions send)."""
    return {
        "message": {
            "data": base64.b64encode(bytes(message.data)).decode(),
            "attributes": dict(message.attributes),
            "messageId": str(message.message_id),
            "publishTime": message.publish_time.isoformat(),
        },
        "subscription": subscription,
    }


def push_pending(stack: Stack, subscription: str, authorization: str | None) -> list[int]:
    """Pub/Sub's part: pull what waits, POST each as a push, ack on 2xx, else make it due again
    (Pub/Sub would retry it with backoff). Returns the HTTP statuses in order."""
    subscriber = stack.ports.bus.subscriber
    path = stack.path(subscription)
    statuses: list[int] = []
    while True:
        response = subscriber.pull(request={"subscription": path, "max_messages": 1}, timeout=5)
        if not response.received_messages:
            return statuses
        received = response.received_messages[0]
        headers = {"Content-Type": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        answer = httpx.post(
            stack.url,
            json=envelope(received.message, path),
            headers=headers,
            timeout=_PUSH_TIMEOUT_S,
        )
        statuses.append(answer.status_code)
        if 200 <= answer.status_code < 300:
            subscriber.acknowledge(request={"subscription": path, "ack_ids": [received.ack_id]})
        else:
            subscriber.modify_ack_deadline(
                request={
                    "subscription": path,
                    "ack_ids": [received.ack_id],
                    "ack_deadline_seconds": 0,
                }
            )
            return statuses  # a refused push is retried later, not in this loop


def pull_all(stack: Stack, subscription: str) -> list[Any]:
    """Every message waiting in a test-side subscription, acked."""
    subscriber = stack.ports.bus.subscriber
    path = stack.path(subscription)
    response = subscriber.pull(request={"subscription": path, "max_messages": 50}, timeout=5)
    if response.received_messages:
        subscriber.acknowledge(
            request={
                "subscription": path,
                "ack_ids": [m.ack_id for m in response.received_messages],
            }
        )
    return [m.message for m in response.received_messages]


def backlog(stack: Stack, subscription: str) -> int:
    return stack.pubsub.state.backlog(stack.path(subscription))


def test_a_pushed_month_closed_publishes_dataset_ready(stack: Stack) -> None:
    closed = make_event(MonthClosed(month="2025-02"), source="/finance-system")
    assert publish_event(stack.ports.bus, closed)

    assert push_pending(stack, "collector", stack.bearer()) == [200]

    assert backlog(stack, "collector") == 0
    ready = [parse_event(bytes(m.data)) for m in pull_all(stack, "trainer")]
    assert [(e.topic, e.data["month"], e.data["caused_by"]) for e in ready] == [
        ("dataset.ready", "2025-02", closed.id)
    ]
    assert pull_all(stack, "monitor")  # the other subscription of dataset.ready has it too
    assert pull_all(stack, DEAD_LETTER_INBOX) == []


def test_bad_envelopes_are_answered_2xx_and_parked(stack: Stack) -> None:
    publisher = stack.ports.bus.publisher
    topic = f"projects/{PROJECT}/topics/month.closed"
    publisher.publish(topic, b"not an event at all").result(timeout=30)

    # Answered 2xx and acked: Pub/Sub will not retry what can never succeed.
    assert push_pending(stack, "collector", stack.bearer()) == [200]
    assert backlog(stack, "collector") == 0
    assert push_pending(stack, "collector", stack.bearer()) == []

    # A body that is not even a push envelope: message.data is not base64.
    body = {"message": {"data": "%%% not base64", "messageId": "m-broken"}, "subscription": "x"}
    answer = httpx.post(
        stack.url, json=body, headers={"Authorization": stack.bearer()}, timeout=_PUSH_TIMEOUT_S
    )
    assert answer.status_code == 200

    parked = {m.attributes["reason"]: m for m in pull_all(stack, DEAD_LETTER_INBOX)}
    assert len(parked) == 2, parked
    reasons = " | ".join(parked)
    assert "MalformedEvent" in reasons
    assert "message.data is not base64" in reasons
    assert {m.attributes["service"] for m in parked.values()} == {"collector"}
    assert pull_all(stack, "trainer") == []


@pytest.mark.parametrize(
    ("claims", "status"),
    [
        (None, 401),
        ({"aud": "https://someone-else.a.run.app"}, 403),
        ({"email": "intruder@project.iam.gserviceaccount.com"}, 403),
    ],
)
def test_a_push_without_the_right_token_is_refused_and_stays_unacked(
    stack: Stack, claims: dict[str, Any] | None, status: int
) -> None:
    closed = make_event(MonthClosed(month="2025-01"), source="/finance-system")
    assert publish_event(stack.ports.bus, closed)
    authorization = None if claims is None else stack.bearer(**claims)

    assert push_pending(stack, "collector", authorization) == [status]

    # Refused, not acked: Pub/Sub keeps it and retries (then dead-letters) on its own.
    assert backlog(stack, "collector") == 1
    assert pull_all(stack, "trainer") == []
    assert pull_all(stack, DEAD_LETTER_INBOX) == []
    assert f"push refused ({status})" in stack.log.read_text(errors="replace")
    pull_all(stack, "collector")  # leave the subscription empty for the next case
