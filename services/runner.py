"""Drive the services from the bus: one delivery at a time, mapping errors to ack / retry / park.

The CLI's `run` (until idle) and `worker` (forever) and the Cloud Functions entry points all
go through `dispatch`, so every way of running a service treats errors the same way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from services.alerter.handler import alert
from services.collector.handler import collect
from services.deployer.handler import deploy
from services.evaluator.handler import evaluate
from services.monitor.handler import monitor
from services.trainer.handler import train
from shared.alerts import alert_for_dead_letter, alert_for_failure
from shared.bootstrap import SUBSCRIPTIONS, Ports
from shared.errors import PermanentError
from shared.events import Envelope, MalformedEvent, parse_event
from shared.ports import BusRecord, Delivery, WarehouseSchemaError
from shared.settings import SettingsError

log = logging.getLogger(__name__)

Handler = Callable[[Envelope, Ports], str]
HANDLERS: dict[str, Handler] = {
    "collector": collect,
    "trainer": train,
    "evaluator": evaluate,
    "deployer": deploy,
    "monitor": monitor,
    "alert-rejected": alert,
    "alert-deployed": alert,
    "alert-drift": alert,
}
# Errors that no retry can fix: park the event with the reason at once.
PERMANENT = (MalformedEvent, PermanentError, WarehouseSchemaError, SettingsError)


class Park(Exception):
    """Raised by `handle_bytes`: the event must go to the dead letter with this reason."""


def handle_bytes(service: str, data: bytes, ports: Ports) -> str:
    """Parse and handle one event for `service`; Park for permanent failures, raise otherwise."""
    try:
        event = parse_event(data)
        expected = SUBSCRIPTIONS[service]
        if event.topic != expected:
            raise MalformedEvent(f"{service} takes {expected} events, got {event.type}")
        return HANDLERS[service](event, ports)
    except PERMANENT as exc:
        raise Park(f"{type(exc).__name__}: {exc}") from exc


def dispatch(service: str, delivery: Delivery, ports: Ports) -> str:
    """Handle one delivery and settle it on the bus; returns the outcome recorded."""
    try:
        outcome = handle_bytes(service, delivery.data, ports)
    except Park as exc:
        log.warning("%s parked %s: %s", service, delivery.message_id, exc)
        ports.bus.park(delivery, reason=str(exc))
        _alert_parked(ports, service, delivery, str(exc))
        return f"parked: {exc}"
    except Exception as exc:  # any other failure may be transient: retry with backoff
        log.exception(
            "%s failed on %s (attempt %d)", service, delivery.message_id, delivery.attempt
        )
        reason = f"{type(exc).__name__}: {exc}"
        ports.bus.nack(delivery, reason=reason)
        if delivery.attempt >= ports.settings.max_attempts:
            _alert_parked(
                ports, service, delivery, f"gave up after {delivery.attempt} tries: {reason}"
            )
        else:
            month = delivery.attributes.get("month") or None
            ports.notifier.notify(
                alert_for_failure(
                    service, delivery.message_id, reason, attempt=delivery.attempt, month=month
                )
            )
        return f"failed: {exc}"
    ports.bus.ack(delivery, outcome=outcome)
    return outcome


def _alert_parked(ports: Ports, service: str, delivery: Delivery, reason: str) -> None:
    record = BusRecord(
        message_id=delivery.message_id,
        topic=delivery.topic,
        subscription=service,
        state="dead",
        attempts=delivery.attempt,
        detail=reason,
        published_at=delivery.published_at,
        updated_at=ports.clock(),
        attributes=delivery.attributes,
    )
    ports.notifier.notify(alert_for_dead_letter(record))


@dataclass
class RunReport:
    """What a run did, per service."""

    handled: dict[str, int] = field(default_factory=dict)
    outcomes: list[tuple[str, str, str]] = field(default_factory=list)  # service, id, outcome


def run_until_idle(
    ports: Ports,
    services: list[str] | None = None,
    *,
    timeout_s: float = 3600.0,
    on_outcome: Callable[[str, str, str], None] | None = None,
) -> RunReport:
    """Process deliveries until none is pending (waiting out retry backoffs), or the timeout."""
    names = services or list(HANDLERS)
    report = RunReport()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        progressed = False
        for name in names:
            for delivery in ports.bus.pull(name, max_messages=1):
                outcome = dispatch(name, delivery, ports)
                progressed = True
                report.handled[name] = report.handled.get(name, 0) + 1
                report.outcomes.append((name, delivery.message_id, outcome))
                if on_outcome:
                    on_outcome(name, delivery.message_id, outcome)
        if not progressed:
            if ports.bus.pending(names) == 0:
                break
            time.sleep(0.2)  # only retries waiting for their backoff remain
    return report


def work_forever(ports: Ports, service: str, *, stop: threading.Event, poll_s: float = 0.5) -> int:
    """One service as a long-running process; returns how many deliveries it handled."""
    handled = 0
    while not stop.is_set():
        deliveries = ports.bus.pull(service, max_messages=1)
        if not deliveries:
            stop.wait(poll_s)
            continue
        for delivery in deliveries:
            dispatch(service, delivery, ports)
            handled += 1
    return handled
