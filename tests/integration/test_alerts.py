"""Alerts reach a (local) Slack webhook with blocks, and a broken webhook never raises."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cashmatch.adapters.notifiers import (
    WEBHOOK_ENV,
    ConsoleNotifier,
    FanOutNotifier,
    SlackNotifier,
    notifier_from_env,
)
from cashmatch.domain.alerts import Alert
from cashmatch.domain.events import (
    DriftDetected,
    EvaluationPassed,
    EvaluationRejected,
    ModelDeployed,
    MonthClosed,
    make_event,
)
from cashmatch.entrypoints.service_table import handlers
from cashmatch.ports import BusRecord
from cashmatch.service_layer.alerting import (
    alert_for_dead_letter,
    alert_for_event,
    alert_for_failure,
)
from cashmatch.service_layer.publishing import publish_event

pytestmark = pytest.mark.integration
SECRET = "T000/B000/very-secret-token"


class Webhook:
    """A local stand-in for Slack's incoming webhook that records every post."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.paths: list[str] = []
        self.status = 200
        self.fail_first = 0  # answer the first posts with 500 whatever `status` says
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                webhook.posts.append(json.loads(self.rfile.read(length)))
                webhook.paths.append(self.path)
                status = 500 if len(webhook.posts) <= webhook.fail_first else webhook.status
                body = b"ok" if status == 200 else b"internal_error"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/{SECRET}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def webhook():
    with Webhook() as hook:
        yield hook


REJECTION = Alert(
    kind="rejection",
    title="Model m-2 rejected for 2025-04",
    month="2025-04",
    versions={"candidate": "m-2", "champion": "m-1"},
    link="https://example.invalid/reports/evaluations/m-2.html",
    details=["auto_rate@99 0.41 < champion 0.45 + 0.002", "a <tag> & more"],
)


def test_slack_notifier_posts_blocks(webhook):
    assert SlackNotifier(webhook.url).notify(REJECTION) is True
    assert webhook.paths == [f"/services/{SECRET}"]
    (post,) = webhook.posts
    assert post["text"] == "rejection: Model m-2 rejected for 2025-04"
    kinds = [b["type"] for b in post["blocks"]]
    assert kinds == ["header", "section", "section", "context"]
    header = post["blocks"][0]["text"]
    assert header["type"] == "plain_text" and "Model m-2 rejected" in header["text"]
    fields = [f["text"] for f in post["blocks"][1]["fields"]]
    assert "*Month*\n2025-04" in fields and "*candidate*\n`m-2`" in fields
    details = post["blocks"][2]["text"]["text"]
    assert "a &lt;tag&gt; &amp; more" in details  # Slack's control characters escaped
    assert "<https://example.invalid/reports/evaluations/m-2.html|open>" in str(post["blocks"][3])


def test_a_failing_webhook_never_raises_nor_leaks_the_url(webhook, caplog):
    webhook.status = 500
    notifier = SlackNotifier(webhook.url)
    with caplog.at_level(logging.DEBUG):
        assert notifier.notify(REJECTION) is False
    assert len(webhook.posts) == 1
    assert "HTTP 500" in caplog.text
    assert SECRET not in caplog.text and SECRET not in repr(notifier)
    assert "http://127.0.0.1/…" in caplog.text


def test_an_unreachable_webhook_never_raises(caplog):
    with Webhook() as hook:
        url = hook.url
    # The server is gone: the connection is refused.
    with caplog.at_level(logging.DEBUG):
        assert SlackNotifier(url, timeout=2).notify(REJECTION) is False
    assert "not sent" in caplog.text
    assert SECRET not in caplog.text


def test_the_webhook_url_comes_from_the_environment(webhook, caplog):
    assert isinstance(notifier_from_env({}), ConsoleNotifier)
    notifier = notifier_from_env({WEBHOOK_ENV: webhook.url})
    assert isinstance(notifier, FanOutNotifier)
    with caplog.at_level(logging.INFO):
        notifier.notify(REJECTION)
    assert len(webhook.posts) == 1
    assert "ALERT rejection: Model m-2 rejected for 2025-04" in caplog.text
    with caplog.at_level(logging.INFO):
        bad = notifier_from_env({WEBHOOK_ENV: f"ftp://host/{SECRET}"})
    assert isinstance(bad, ConsoleNotifier)
    assert "Slack alerts disabled" in caplog.text and SECRET not in caplog.text


def test_console_notifier_logs_and_does_not_print(caplog, capsys):
    with caplog.at_level(logging.INFO, logger="cashmatch.adapters.notifiers"):
        ConsoleNotifier().notify(REJECTION)
        ConsoleNotifier().notify(
            Alert(kind="deployment", title="Model m-3 deployed", versions={"deployed": "m-3"})
        )
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.WARNING, logging.INFO]
    assert "candidate=m-2" in caplog.records[0].getMessage()
    assert capsys.readouterr().out == ""


def _verdict(model, **extra):
    return model(
        month="2025-04",
        model_version="m-2",
        dataset_version="ds-2025-04-x",
        metrics={"auto_rate@99": 0.41},
        baseline_metrics={"auto_rate@99": 0.30},
        champion_version="m-1",
        champion_metrics={"auto_rate@99": 0.45},
        reasons=["does not beat the champion"],
        report_uri="file:///ws/blobs/reports/evaluations/m-2.html",
        caused_by="evt-1",
        **extra,
    )


def test_events_map_to_alerts():
    rejected = alert_for_event(make_event(_verdict(EvaluationRejected), source="/t"))
    assert rejected is not None and rejected.kind == "rejection"
    assert rejected.versions == {"candidate": "m-2", "champion": "m-1"}
    assert rejected.link == "file:///ws/blobs/reports/evaluations/m-2.html"
    assert "does not beat the champion" in rejected.details
    assert any("candidate 0.410, champion 0.450, rules 0.300" in d for d in rejected.details)

    assert alert_for_event(make_event(_verdict(EvaluationPassed), source="/t")) is None
    assert alert_for_event(make_event(MonthClosed(month="2025-04"), source="/t")) is None

    deployed = alert_for_event(
        make_event(
            ModelDeployed(
                month="2025-04",
                model_version="m-2",
                dataset_version="ds",
                endpoint="http://127.0.0.1:8000/match",
                caused_by="e",
            ),
            source="/t",
        )
    )
    assert deployed is not None and deployed.kind == "deployment"
    assert deployed.link == "http://127.0.0.1:8000/match"

    drift = alert_for_event(
        make_event(
            DriftDetected(
                month="2025-06",
                dataset_version="ds-2025-06-x",
                drifted_columns=["reference_rate", "amount"],
                report_uri="file:///ws/blobs/reports/drift/2025-06.html",
                champion_version=None,
                caused_by="e",
            ),
            source="/t",
        )
    )
    assert drift is not None and drift.kind == "drift"
    assert drift.title == "Drift in 2025-06: reference_rate, amount"
    assert drift.versions == {}


def test_dead_letters_and_failures_map_to_alerts(make_ports):
    ports = make_ports()
    event = make_event(MonthClosed(month="2025-04"), source="/t")
    publish_event(ports.bus, event)
    (delivery,) = ports.bus.pull("collector")
    ports.bus.park(delivery, reason="PermanentError: no transfers booked in 2025-04")
    (record,) = ports.bus.dead_letters()
    alert = alert_for_dead_letter(record)
    assert alert.kind == "dead_letter" and alert.month == "2025-04"
    assert alert.title == "month.closed event parked by collector"
    assert "no transfers booked in 2025-04" in alert.details[0]
    assert event.id in alert.details[1]

    bare = BusRecord(
        message_id="x",
        topic="dataset.ready",
        subscription=None,
        state="dead",
        attempts=5,
        detail="",
        published_at=dt.datetime.now(dt.UTC),
        updated_at=dt.datetime.now(dt.UTC),
    )
    assert alert_for_dead_letter(bare).month is None

    failure = alert_for_failure("trainer", "msg-1", "OSError: disk full", attempt=2)
    assert failure.kind == "failure" and "attempt 2" in failure.details[1]


def test_the_alerter_has_the_bus_retry_an_alert_the_webhook_refused(make_ports, webhook):
    from cashmatch.service_layer.dispatch import run_until_idle

    ports = make_ports(max_attempts=3)
    ports.notifier = notifier_from_env({WEBHOOK_ENV: webhook.url})
    deployed = ModelDeployed(
        month="2025-04", model_version="m-2", dataset_version="ds", endpoint="e", caused_by="x"
    )
    webhook.fail_first = 1  # Slack has a bad moment, then answers again
    publish_event(ports.bus, make_event(deployed, source="/t"))
    run_until_idle(ports, handlers(["alert-deployed"]), timeout_s=60)
    texts = [post["text"] for post in webhook.posts]
    # the refused alert, the runner's word that the alerter failed once, the alert again
    assert texts[0] == texts[-1] == "deployment: Model m-2 deployed", texts
    assert len(texts) == 3 and texts[1].startswith("failure: alert-deployed failed")
    assert ports.bus.dead_letters() == []

    webhook.fail_first, webhook.status = 0, 500  # ...and now Slack is down for good
    publish_event(ports.bus, make_event(deployed, source="/t"))
    run_until_idle(ports, handlers(["alert-deployed"]), timeout_s=60)
    (parked,) = ports.bus.dead_letters()
    assert parked.attempts == 3 and "AlertNotDelivered" in parked.detail
