"""One service's smoke run, inside an environment synced with that service's member alone.

Run by tests/integration/test_members.py as `<member env>/bin/python smoke.py <service>` with
CASHMATCH_WORKSPACE (and CASHMATCH_WAREHOUSE) set. It imports nothing but what the member
declares: no pytest, no test helpers. A Cloud Run service gets the newest event of its topic on
the workspace's bus posted to its own functions-framework function (the collector's
month.closed published by the scheduled close's entry point, as on Google Cloud) (services/<name>/main.py,
the image's CMD), and must publish what it promises; the matcher builds its Ray Serve app and
answers a match over HTTP from its FastAPI ingress. Prints one JSON line: what happened.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# what each service is posted, and the topic it must publish in answer
CHAIN = {
    "collector": ("month.closed", "dataset.ready"),
    "trainer": ("dataset.ready", "model.trained"),
    "monitor": ("dataset.ready", None),  # drift.detected only when there is drift
    "evaluator": ("model.trained", "evaluation.passed"),
    "deployer": ("evaluation.passed", "model.deployed"),
    "alerter": ("model.deployed", None),  # a notification, no event
}


def newest(bus, topic: str):
    """The newest record of `topic` on the bus."""
    records = bus.log(limit=500, topic=topic)
    if not records:
        raise SystemExit(f"no {topic} event on the bus to post")
    return max(records, key=lambda r: r.published_at)


def post_to_function(service: str, data: bytes) -> int:
    """POST a Pub/Sub push CloudEvent to the service's own function; the HTTP status."""
    from functions_framework import create_app

    source = ROOT / "services" / service / "main.py"
    app = create_app(target="handle", source=str(source), signature_type="cloudevent")
    message = {"data": base64.b64encode(data).decode(), "messageId": f"smoke-{service}"}
    headers = {
        "ce-specversion": "1.0",
        "ce-id": f"smoke-{service}-{time.time_ns()}",
        "ce-source": "//pubsub.googleapis.com/projects/p/topics/t",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "content-type": "application/json",
    }
    body = json.dumps({"message": message, "subscription": f"projects/p/subscriptions/{service}"})
    return app.test_client().post("/", data=body, headers=headers).status_code


def _alerts_logged() -> list[str]:
    """The alerts the log notifier writes from now on (the alerter's output without Slack)."""
    import logging

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    notifier_log = logging.getLogger("cashmatch.adapters.notifiers")
    notifier_log.setLevel(logging.INFO)  # deployments are INFO, failures WARNING
    notifier_log.addHandler(Keep())
    return seen


def run_service(service: str) -> dict:
    from cashmatch.bootstrap import bootstrap
    from cashmatch.settings import load_settings

    ports = bootstrap(load_settings())
    takes, answers = CHAIN[service]
    if service == "collector":
        # what the scheduled close runs in the collector's image (infra/terraform/main.tf)
        from cashmatch.entrypoints.close_month import main as close_month

        assert close_month(["--month", "2025-03"]) == 0
    _, data, _ = ports.bus.get_message(newest(ports.bus, takes).message_id)
    before = {r.message_id for r in ports.bus.log(limit=1000)}
    alerts = _alerts_logged()
    status = post_to_function(service, data)
    new = sorted({r.topic for r in ports.bus.log(limit=1000) if r.message_id not in before})
    parked = [r.topic for r in ports.bus.log(limit=1000) if r.state == "dead"]
    return {
        "service": service,
        "status": status,
        "published": new,
        "parked": parked,
        "expected": answers,
        "alerts": alerts,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_api(service) -> tuple[object, int]:
    """The matcher's FastAPI ingress over `service` on a free loopback port (uvicorn, a thread);
    the server and its port."""
    import uvicorn

    from cashmatch.entrypoints.matcher.api import Limits, ThreadedBackend, create_api

    port = _free_port()
    config = uvicorn.Config(
        create_api(ThreadedBackend(service), Limits()),
        host="127.0.0.1",
        port=port,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, port


REQUEST = {
    "transfer": {"transfer_id": "t-1", "booking_date": dt.date(2025, 3, 14).isoformat(),
                 "amount": 1230.0, "currency": "PLN", "title": "FV/2025/03/0042",
                 "direction": "incoming"},
    "open_invoices": [{"invoice_id": "i-1", "invoice_number": "FV/2025/03/0042",
                       "direction": "receivable", "counterparty_id": "c-1",
                       "counterparty_name": "Acme", "currency": "PLN", "amount": 1230.0,
                       "issue_date": "2025-03-01", "due_date": "2025-03-15"}],
}  # fmt: skip


def run_matcher() -> dict:
    from cashmatch.adapters.local.blobstore import DirectoryBlobStore
    from cashmatch.entrypoints.matcher.app import MatcherArgs, build_app
    from cashmatch.service_layer.matcher import MatcherService, ServingConfig
    from cashmatch.service_layer.registry import ModelRegistry
    from cashmatch.settings import load_settings

    blobs = DirectoryBlobStore(load_settings().workspace.expanduser().resolve() / "blobs")
    build_app(MatcherArgs(store="local", blob_root=str(blobs.root)))  # Ray Serve binds the app
    registry = ModelRegistry(blobs)
    champion = registry.champion()[0].version
    service = MatcherService(registry)
    service.apply(ServingConfig(model_version=champion))
    server, port = serve_api(service)
    post = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/match",
        data=json.dumps(REQUEST).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(post, timeout=60) as answer:
        body = json.loads(answer.read())
        status = answer.status
    server.should_exit = True  # type: ignore[attr-defined]
    return {"service": "matcher", "status": status, "model_version": body.get("model_version"),
            "champion": champion, "answer": body}  # fmt: skip


def main() -> None:
    service = sys.argv[1]
    result = run_matcher() if service == "matcher" else run_service(service)
    sys.stdout.write(json.dumps(result, default=str) + "\n")


if __name__ == "__main__":
    main()
