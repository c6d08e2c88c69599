"""Commands about the event bus: publish and republish events, follow them, redeliver the dead
ones, and process the bus (all services at once, or one as its own long-running worker)."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.text import Text

from cashmatch.domain.events import PAYLOADS, make_event
from cashmatch.domain.subscriptions import SUBSCRIPTIONS
from cashmatch.entrypoints.cli import output, params, session, views
from cashmatch.entrypoints.cli.approval import who
from cashmatch.service_layer import operations
from cashmatch.service_layer.publishing import publish_event

PANEL = "Events on the bus"
commands = typer.Typer()
EventId = Annotated[str, typer.Argument(help="the id, or its start as `events` shows it")]


@commands.command(rich_help_panel=PANEL)
def publish(
    topic: Annotated[str, typer.Argument(help=f"one of: {', '.join(PAYLOADS)}")],
    month: Annotated[str | None, typer.Option(help="YYYY-MM", callback=params.month)] = None,
    data: Annotated[str | None, typer.Option(help="the event's data as JSON")] = None,
    raw: Annotated[
        Path | None,
        typer.Option(
            help="publish this file's bytes as they are (no checks)", exists=True, dir_okay=False
        ),
    ] = None,
    source: str = "/cli",
    binary: Annotated[
        bool,
        typer.Option(
            "--binary",
            help="CloudEvents binary content mode: the data as the message, the context as "
            "ce-* attributes (as a CloudEvents SDK sends it); default: structured JSON",
        ),
    ] = False,
) -> None:
    """Publish an event, as the finance system or a person does (e.g. month.closed)."""
    bus = session.ports().bus
    topics = sorted(set(SUBSCRIPTIONS.values()))
    if topic not in topics:
        raise typer.BadParameter(
            f"no service takes {topic!r}; the topics are {', '.join(topics)}", param_hint="TOPIC"
        )
    if raw is not None:
        message_id = str(uuid.uuid4())
        bus.publish(topic, raw.read_bytes(), {"source": source}, message_id=message_id)
        output.say(f"published {raw} as-is on {topic}: id {message_id}")
        return
    model = PAYLOADS[topic]  # every topic a service takes has its payload model
    try:
        body = json.loads(data) if data else {}
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--data") from None
    if not isinstance(body, dict):
        raise typer.BadParameter("must be a JSON object", param_hint="--data")
    if month is not None:
        body["month"] = month
    try:
        payload = model.model_validate(body)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        event = make_event(payload, source=source)
    except ValidationError as exc:
        raise typer.BadParameter(params.in_words(exc)) from None
    if binary:
        message, attributes = event.binary_mode()
        bus.publish(event.topic, message, attributes, message_id=event.id)
    else:
        publish_event(bus, event)
    mode = " (binary mode)" if binary else ""
    output.say(f"published {event.type} for {payload.month}{mode}: id {event.id}")


@commands.command(rich_help_panel=PANEL)
def republish(event_id: EventId) -> None:
    """Publish a copy of an earlier event with a new id, to redo the step it triggers."""
    ports = session.ports()
    event_id = params.event_id(ports.bus, event_id)
    topic, new_id = operations.republish(ports, event_id, by=who())
    output.say(f"republished {event_id} on {topic}: new id {new_id}")


@commands.command(rich_help_panel=PANEL)
def events(
    limit: Annotated[int, typer.Option(min=0)] = 30,
    topic: Annotated[str | None, typer.Option(help="only this topic")] = None,
    month: Annotated[
        str | None, typer.Option(help="only events about this month", callback=params.month)
    ] = None,
    state: Annotated[
        str | None, typer.Option(help="only this outcome: done, dead, retrying, pending, ...")
    ] = None,
    as_json: params.JsonFlag = False,
) -> None:
    """The newest events and what each subscriber made of them.

    --json: a list, newest first, of one object per event and subscriber:
    {message_id, topic, month, subscription, state, attempts, detail,
    published_at, updated_at, attributes}
    """
    records = session.ports().bus.log(limit=limit if not (month or state) else 100_000, topic=topic)
    shown = [
        views.delivery(r)
        for r in records
        if (month is None or r.attributes.get("month") == month)
        and (state is None or r.state == state)
    ][:limit]
    if as_json:
        output.as_json(shown)
        return
    output.table(
        "events (newest first)",
        ["time", "id", "topic", "month", "subscriber", "state", "tries", "outcome"],
        [
            [
                d["published_at"][11:19],
                output.short(d["message_id"]),
                d["topic"],
                d["month"] or "",
                d["subscription"],
                d["state"],
                d["attempts"],
                d["detail"][:90],
            ]
            for d in shown
        ],
    )


@commands.command("dead-letters", rich_help_panel=PANEL)
def dead_letters(as_json: params.JsonFlag = False) -> None:
    """Events parked after failing for good, with the reason.

    --json: a list of objects as `events --json` gives them:
    {message_id, topic, month, subscription, state, attempts, detail,
    published_at, updated_at, attributes}
    """
    shown = [views.delivery(r) for r in session.ports().bus.dead_letters()]
    if as_json:
        output.as_json(shown)
        return
    output.table(
        "dead letters",
        ["id", "topic", "month", "subscriber", "tries", "reason"],
        [
            [d["message_id"], d["topic"], d["month"], d["subscription"], d["attempts"], d["detail"]]
            for d in shown
        ],
    )


@commands.command(rich_help_panel=PANEL)
def redrive(
    event_id: EventId,
    subscriber: Annotated[str | None, typer.Option(callback=params.subscriber)] = None,
) -> None:
    """Deliver a dead-lettered event again (after fixing the cause)."""
    ports = session.ports()
    event_id = params.event_id(ports.bus, event_id)
    try:
        count = operations.redrive(ports, event_id, subscriber=subscriber, by=who())
    except operations.NothingToDo as exc:
        output.fail(str(exc))
        raise typer.Exit(1) from None
    output.say(f"redriven {count} deliver{'y' if count == 1 else 'ies'} of {event_id}")


@commands.command(rich_help_panel=PANEL)
def run(
    service: Annotated[
        list[str] | None, typer.Option(help="only these services", callback=params.services)
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="seconds; checked between passes, a delivery runs to its end")
    ] = 3600.0,
) -> None:
    """Process the bus until nothing is pending."""
    # The handlers bring the model's libraries: imported by the commands that run them only.
    from cashmatch.entrypoints.service_table import handlers
    from cashmatch.service_layer.dispatch import run_until_idle

    def show(name: str, message_id: str, outcome: str) -> None:
        output.console.print(
            Text.assemble((f"{name:<9}", "bold"), f" {output.short(message_id)} {outcome}")
        )

    report = run_until_idle(
        session.ports(), handlers(service or None), timeout_s=timeout, on_outcome=show
    )
    output.say(f"idle after {sum(report.handled.values())} deliveries")


@commands.command(rich_help_panel=PANEL)
def worker(
    service: Annotated[str, typer.Argument(help=", ".join(SUBSCRIPTIONS), callback=params.service)],
    poll: Annotated[float, typer.Option(help="seconds between polls when idle")] = 0.5,
) -> None:
    """Run one service as its own long-running process (stop with Ctrl-C or SIGTERM)."""
    import signal

    from cashmatch.entrypoints.service_table import HANDLERS
    from cashmatch.service_layer.dispatch import work_forever

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    output.say(f"{service} worker listening on {SUBSCRIPTIONS[service]}")
    handled = work_forever(session.ports(), service, HANDLERS[service], stop=stop, poll_s=poll)
    output.say(f"{service} worker stopped after {handled} deliveries")
