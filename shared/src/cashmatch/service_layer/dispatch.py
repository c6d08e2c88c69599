"""Drive a service from the bus: one delivery at a time, mapping errors to ack / retry / park.

Generic over the handler it runs: the CloudEvent edge of one service passes that service's
handler alone, so a service's process loads no other service's code; the CLI's `run` and
`worker` pass the table of all of them (entrypoints/service_table.py). Every way of running
a service goes through `dispatch`, so all treat errors the same way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cashmatch.domain.errors import PermanentError
from cashmatch.domain.events import Envelope, MalformedEvent, parse_event
from cashmatch.domain.subscriptions import SUBSCRIPTIONS
from cashmatch.ports import BusRecord, Delivery, WarehouseSchemaError
from cashmatch.service_layer.alerting import alert_for_dead_letter, alert_for_failure
from cashmatch.service_layer.context import Ports
from cashmatch.settings import SettingsError

log = logging.getLogger(__name__)

# What a service does with one event: returns the outcome recorded on the bus.
Handler = Callable[[Envelope, Ports], str]
# Errors that no retry can fix: park the event with the reason at once.
PERMANENT = (MalformedEvent, PermanentError, WarehouseSchemaError, SettingsError)


class Park(Exception):
    """Raised by `handle_bytes`: the event must go to the dead letter with this reason."""


def handle_bytes(
    service: str,
    handler: Handler,
    data: bytes,
    ports: Ports,
    attributes: Mapping[str, str] | None = None,
) -> str:
    """Parse one event for subscriber `service` (its message `attributes` carry the context of a
    binary-mode CloudEvent) and run `handler` on it; Park for permanent failures, raise
    otherwise."""
    try:
        event = parse_event(data, attributes)
        expected = SUBSCRIPTIONS[service]
        if event.topic != expected:
            raise MalformedEvent(f"{service} takes {expected} events, got {event.type}")
        return handler(event, ports)
    except PERMANENT as exc:
        raise Park(f"{type(exc).__name__}: {exc}") from exc


def dispatch(service: str, handler: Handler, delivery: Delivery, ports: Ports) -> str:
    """Handle one delivery with `handler` and settle it on the bus; returns the outcome."""
    try:
        outcome = handle_bytes(service, handler, delivery.data, ports, delivery.attributes)
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
    handlers: Mapping[str, Handler],
    *,
    timeout_s: float = 3600.0,
    on_outcome: Callable[[str, str, str], None] | None = None,
) -> RunReport:
    """Process the deliveries of `handlers`' subscribers until none is pending (waiting out
    retry backoffs), or the timeout."""
    names = list(handlers)
    report = RunReport()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        progressed = False
        for name in names:
            for delivery in ports.bus.pull(name, max_messages=1):
                outcome = dispatch(name, handlers[name], delivery, ports)
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


def work_forever(
    ports: Ports,
    service: str,
    handler: Handler,
    *,
    stop: threading.Event,
    poll_s: float = 0.5,
) -> int:
    """One service as a long-running process; returns how many deliveries it handled."""
    handled = 0
    while not stop.is_set():
        deliveries = ports.bus.pull(service, max_messages=1)
        if not deliveries:
            stop.wait(poll_s)
            continue
        for delivery in deliveries:
            dispatch(service, handler, delivery, ports)
            handled += 1
    return handled
