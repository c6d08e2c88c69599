"""`cashmatch`: what the finance system and the engineers type. Each command calls the same
handlers and ports the services use; this module only parses arguments and prints."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import threading
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from google.auth.exceptions import DefaultCredentialsError
from pydantic import ValidationError

from cashmatch.bootstrap import bootstrap
from cashmatch.domain.events import PAYLOADS, MalformedEvent, checked_month, make_event, parse_event
from cashmatch.domain.subscriptions import SUBSCRIPTIONS
from cashmatch.entrypoints.cli import output
from cashmatch.entrypoints.service_table import HANDLERS, handlers
from cashmatch.ports import WarehouseSchemaError
from cashmatch.service_layer.context import Ports
from cashmatch.service_layer.dispatch import run_until_idle, work_forever
from cashmatch.service_layer.publishing import publish_event
from cashmatch.settings import Settings, SettingsError, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
_overrides: dict[str, Any] = {}
_show_tracebacks = False


def _month(value: str | None) -> str | None:
    """A --month option: YYYY-MM (it ends up in file names), refused at the door otherwise."""
    if value is None:
        return None
    try:
        return checked_month(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _check_services(names: list[str], noun: str = "services") -> None:
    unknown = [n for n in names if n not in SUBSCRIPTIONS]
    if unknown:
        raise typer.BadParameter(f"unknown {unknown}; the {noun} are {', '.join(SUBSCRIPTIONS)}")


def _services(values: list[str] | None) -> list[str] | None:
    _check_services(values or [])
    return values


def _service(value: str) -> str:
    _check_services([value])
    return value


def _subscriber(value: str | None) -> str | None:
    _check_services([value] if value is not None else [], noun="subscribers")
    return value


@app.callback()
def _options(
    workspace: Annotated[
        Path | None, typer.Option(help="workspace folder (CASHMATCH_WORKSPACE)")
    ] = None,
    warehouse: Annotated[
        str | None, typer.Option(help="warehouse DuckDB file (CASHMATCH_WAREHOUSE)")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="log what happens; tracebacks on errors")
    ] = False,
) -> None:
    global _show_tracebacks
    _show_tracebacks = verbose
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _overrides.clear()
    if workspace is not None:
        _overrides["workspace"] = workspace
    if warehouse is not None:
        _overrides["warehouse"] = warehouse


def settings() -> Settings:
    """The process's settings, with the command line's overrides."""
    return load_settings(**_overrides)


def ports() -> Ports:
    """The composition root for this command."""
    return bootstrap(settings())


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="DuckDB file to write")],
    months: Annotated[int, typer.Option(min=1, max=120)] = 8,
    start: Annotated[str, typer.Option(help="first month, YYYY-MM", callback=_month)] = "2025-01",
    scale: Annotated[float, typer.Option(min=0.01, help="multiplies the volume")] = 1.0,
    seed: int = 7,
    profile: Annotated[str, typer.Option(help="default | messy")] = "default",
) -> None:
    """Write a finance-system warehouse with realistic, messy, labelled months."""
    from cashmatch.synth import SynthConfig, generate, write_warehouse

    try:
        config = SynthConfig(months=months, start=start, seed=seed, scale=scale, profile=profile)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    with output.console.status(f"synthesizing {months} months ({profile}, scale {scale})…"):
        data = generate(config)
        write_warehouse(data, out)
    per_month = data.transfers.groupby(data.transfers["booking_date"].dt.strftime("%Y-%m")).size()
    output.table(
        f"wrote {out}",
        ["month", "transfers"],
        [[m, int(n)] for m, n in per_month.items()],
    )
    output.console.print(
        f"{len(data.invoices)} invoices, {len(data.transfers)} transfers, "
        f"{len(data.matches)} labels"
    )


@app.command()
def publish(
    topic: Annotated[str, typer.Argument(help=f"one of: {', '.join(PAYLOADS)}")],
    month: Annotated[str | None, typer.Option(help="YYYY-MM", callback=_month)] = None,
    data: Annotated[str | None, typer.Option(help="the event's data as JSON")] = None,
    raw: Annotated[
        Path | None,
        typer.Option(
            help="publish this file's bytes as they are (no checks)", exists=True, dir_okay=False
        ),
    ] = None,
    source: str = "/cli",
) -> None:
    """Publish an event, as the finance system or a person does (e.g. month.closed)."""
    bus = ports().bus
    topics = sorted(set(SUBSCRIPTIONS.values()))
    if topic not in topics:
        raise typer.BadParameter(
            f"no service takes {topic!r}; the topics are {', '.join(topics)}", param_hint="TOPIC"
        )
    if raw is not None:
        message_id = str(uuid.uuid4())
        bus.publish(topic, raw.read_bytes(), {"source": source}, message_id=message_id)
        output.console.print(f"published {raw} as-is on {topic}: id {message_id}")
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
        raise typer.BadParameter(_in_words(exc)) from None
    publish_event(bus, event)
    output.console.print(f"published {event.type} for {payload.month}: id {event.id}")


def _event_id(bus: Any, given: str) -> str:
    """The full id of the event `given` names: its id, or the start of it that `events` shows."""
    try:
        bus.get_message(given)
        return given
    except KeyError:
        pass
    found = sorted(
        {r.message_id for r in bus.log(limit=1_000_000) if r.message_id.startswith(given)}
    )
    if len(given) < 4 or not found:
        raise typer.BadParameter(f"no event with id {given!r}", param_hint="EVENT_ID")
    if len(found) > 1:
        raise typer.BadParameter(
            f"{given!r} starts {len(found)} event ids ({', '.join(found[:3])}, ...): give more",
            param_hint="EVENT_ID",
        )
    return found[0]


@app.command()
def republish(
    event_id: Annotated[str, typer.Argument(help="the id, or its start as `events` shows it")],
) -> None:
    """Publish a copy of an earlier event with a new id, to redo the step it triggers."""
    bus = ports().bus
    event_id = _event_id(bus, event_id)
    topic, data, attributes = bus.get_message(event_id)
    new_id = str(uuid.uuid4())
    try:
        original = parse_event(data)
        copy = original.model_copy(update={"id": new_id, "time": dt.datetime.now(dt.UTC)})
        publish_event(bus, copy)
    except MalformedEvent:
        bus.publish(topic, data, {**attributes, "republished_from": event_id}, message_id=new_id)
    output.console.print(f"republished {event_id} on {topic}: new id {new_id}")


@app.command()
def events(
    limit: Annotated[int, typer.Option(min=0)] = 30,
    topic: Annotated[str | None, typer.Option(help="only this topic")] = None,
    month: Annotated[
        str | None, typer.Option(help="only events about this month", callback=_month)
    ] = None,
    state: Annotated[
        str | None, typer.Option(help="only this outcome: done, dead, retrying, pending, ...")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The newest events and what each subscriber made of them."""
    records = ports().bus.log(limit=limit if not (month or state) else 100_000, topic=topic)
    records = [
        r
        for r in records
        if (month is None or r.attributes.get("month") == month)
        and (state is None or r.state == state)
    ][:limit]
    if as_json:
        output.as_json([r.__dict__ for r in records])
        return
    output.table(
        "events (newest first)",
        ["time", "id", "topic", "month", "subscriber", "state", "tries", "outcome"],
        [
            [
                r.published_at.strftime("%H:%M:%S"),
                r.message_id[:8],
                r.topic,
                r.attributes.get("month", ""),
                r.subscription or "–",
                r.state,
                r.attempts,
                r.detail[:90],
            ]
            for r in records
        ],
    )


@app.command("dead-letters")
def dead_letters(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Events parked after failing for good, with the reason."""
    records = ports().bus.dead_letters()
    if as_json:
        output.as_json([r.__dict__ for r in records])
        return
    output.table(
        "dead letters",
        ["id", "topic", "subscriber", "tries", "reason"],
        [[r.message_id, r.topic, r.subscription, r.attempts, r.detail] for r in records],
    )


@app.command()
def redrive(
    event_id: Annotated[str, typer.Argument(help="the id, or its start as `events` shows it")],
    subscriber: Annotated[str | None, typer.Option(callback=_subscriber)] = None,
) -> None:
    """Deliver a dead-lettered event again (after fixing the cause)."""
    bus = ports().bus
    event_id = _event_id(bus, event_id)
    count = bus.redrive(event_id, subscriber)
    if count == 0:
        output.fail(f"no dead delivery of {event_id}")
        raise typer.Exit(1)
    output.console.print(f"redriven {count} deliver{'y' if count == 1 else 'ies'} of {event_id}")


@app.command()
def models(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Model versions with metrics, verdicts and lineage; the champion and the deployed one."""
    registry = ports().registry
    summary = registry.describe()
    rows = []
    for record in registry.versions():
        verdict = registry.verdict(record.version)
        rows.append(
            {
                "version": record.version,
                "trained_for": record.dataset_version,
                "months": f"{record.training_months[0]}..{record.training_months[-1]}",
                "auto_rate@99": verdict.metrics.get("auto_rate@99") if verdict else None,
                "exact": verdict.metrics.get("exact_set_accuracy") if verdict else None,
                "rules_auto": verdict.baseline_metrics.get("auto_rate@99") if verdict else None,
                "verdict": ("passed" if verdict.passed else "rejected") if verdict else "pending",
                "report": verdict.report_uri if verdict else None,
                "role": " ".join(
                    r
                    for r, v in (
                        ("champion", summary["champion"]),
                        ("deployed", summary["deployed"]),
                    )
                    if v == record.version
                ),
            }
        )
    if as_json:
        output.as_json({**summary, "models": rows})
        return
    output.table("models", list(rows[0]) if rows else ["version"], [list(r.values()) for r in rows])


@app.command()
def match(
    month: Annotated[
        str, typer.Option(help="YYYY-MM: the month whose transfers to match", callback=_month)
    ],
    out: Annotated[Path, typer.Option(help="CSV to write")],
    version: Annotated[
        str | None, typer.Option(help="model version (default: the deployed one)")
    ] = None,
    history_months: Annotated[int, typer.Option(min=0, max=120)] = 12,
) -> None:
    """Match a month of any contract warehouse with the deployed champion; write one CSV row per
    predicted pair (a transfer that pays nothing gets one row with an empty invoice_id)."""
    from cashmatch.service_layer.batch_matching import match_month, write_csv_atomically
    from cashmatch.service_layer.model_store import ArtifactDigestMismatch, load_verified

    if not out.parent.is_dir():  # found out before the month is matched, not after
        raise typer.BadParameter(f"{out.parent} is not a folder", param_hint="--out")
    built = ports()
    built.warehouse.check_schema()
    chosen = version or built.registry.deployed()[0].version
    if chosen is None:
        output.fail("no deployed model yet: close a month first (cashmatch publish month.closed)")
        raise typer.Exit(1)
    try:
        model = load_verified(built.blobs, built.registry.get(chosen))
    except (KeyError, ValueError, ArtifactDigestMismatch) as exc:
        output.fail(f"cannot load model {chosen}: {exc}")
        raise typer.Exit(1) from None
    with output.console.status(f"matching {month} with {chosen}…"):
        try:
            predictions, set_aside = match_month(
                model, built.warehouse, month, history_months=history_months
            )
        except ValueError as exc:
            output.fail(str(exc))
            raise typer.Exit(1) from None
    write_csv_atomically(predictions, out)
    per_transfer = predictions.groupby("transfer_id")["decision"].first()
    output.table(
        f"{month} matched by {chosen} → {out}",
        ["transfers", "pairs", "auto", "review"],
        [
            [
                len(per_transfer),
                int(predictions["invoice_id"].notna().sum()),
                int((per_transfer == "auto").sum()),
                int((per_transfer == "review").sum()),
            ]
        ],
    )
    if not set_aside.empty:
        output.table(
            f"{len(set_aside)} rows of {month} set aside as invalid (not matched)",
            ["table", "key", "reason"],
            set_aside[["table", "key", "reason"]].values.tolist(),
        )


@app.command()
def quarantine(
    month: Annotated[str, typer.Option(help="YYYY-MM", callback=_month)],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Rows the collector set aside for a month, by key, with the reason."""
    from cashmatch.ports import BlobNotFound

    try:
        rows = ports().datasets.read_quarantine(month)
    except BlobNotFound:
        output.fail(f"month {month} has not been collected")
        raise typer.Exit(1) from None
    if as_json:
        output.as_json(rows.to_dict(orient="records"))
        return
    output.table(
        f"quarantine of {month}: {len(rows)} rows",
        ["table", "key", "reason"],
        rows[["table", "key", "reason"]].values.tolist(),
    )


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    events: Annotated[int, typer.Option(help="how many recent events")] = 10,
) -> None:
    """Months, datasets, models and verdicts, the champion's lineage, the deployment, events."""
    from cashmatch.entrypoints.cli.status import gather, show

    current = gather(ports(), events=events)
    if as_json:
        output.as_json(current)
    else:
        show(current)


@app.command()
def run(
    service: Annotated[
        list[str] | None, typer.Option(help="only these services", callback=_services)
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="seconds; checked between passes, a delivery runs to its end")
    ] = 3600.0,
) -> None:
    """Process the bus until nothing is pending."""

    def show(name: str, message_id: str, outcome: str) -> None:
        output.console.print(f"[bold]{name:<9}[/bold] {message_id[:8]} {outcome}")

    report = run_until_idle(ports(), handlers(service or None), timeout_s=timeout, on_outcome=show)
    output.console.print(f"idle after {sum(report.handled.values())} deliveries")


@app.command()
def worker(
    service: Annotated[str, typer.Argument(help=", ".join(SUBSCRIPTIONS), callback=_service)],
    poll: Annotated[float, typer.Option(help="seconds between polls when idle")] = 0.5,
) -> None:
    """Run one service as its own long-running process (stop with Ctrl-C or SIGTERM)."""
    import signal

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    output.console.print(f"{service} worker listening on {SUBSCRIPTIONS[service]}")
    handled = work_forever(ports(), service, HANDLERS[service], stop=stop, poll_s=poll)
    output.console.print(f"{service} worker stopped after {handled} deliveries")


@app.command()
def approve(
    version: str,
    reason: Annotated[str, typer.Option(help="why")] = "approved",
) -> None:
    """Approve a passed version for roll-out (when CASHMATCH_APPROVAL_REQUIRED is on)."""
    _decide(version, approved=True, reason=reason)


@app.command()
def reject(
    version: str,
    reason: Annotated[str, typer.Option(help="why it must not be rolled out")],
) -> None:
    """Refuse the roll-out of a passed version, with the reason kept in the registry."""
    _decide(version, approved=False, reason=reason)


def _decide(version: str, *, approved: bool, reason: str) -> None:
    from cashmatch.entrypoints.cli.approval import decide

    try:
        decision, event_id = decide(ports(), version, approved=approved, reason=reason)
    except (KeyError, ValueError) as exc:
        output.fail(str(exc))
        raise typer.Exit(1) from None
    word = "approved" if decision.approved else "rejected"
    if decision.approved != approved:
        output.fail(f"{version} was already {word} by {decision.by}; a decision is final")
        raise typer.Exit(1)
    output.console.print(f"{version} {word} by {decision.by}: {decision.reason}")
    if event_id:
        output.console.print(f"republished its evaluation.passed as {event_id}: run the deployer")


@app.command()
def serve() -> None:
    """Start local Ray Serve on 127.0.0.1:CASHMATCH_SERVE_PORT with the deployed model."""
    from cashmatch.entrypoints.cli.serving import serve_command

    serve_command(settings())


@app.command()
def rollback(
    to: Annotated[str, typer.Option("--to", help="model version to serve again")],
) -> None:
    """Serve an earlier version again, through the same deploy path; both pointers move to it."""
    from cashmatch.entrypoints.cli.serving import rollback_command

    rollback_command(settings(), to)


@app.command("serve-stop")
def serve_stop() -> None:
    """Stop local Ray Serve and its Ray head."""
    from cashmatch.entrypoints.cli.serving import stop_command

    stop_command(settings())


@app.command()
def demo(
    workspace: Annotated[
        Path,
        typer.Option(help="the demo's folder: made new, or an earlier demo's, which is replaced"),
    ] = Path(".demo"),
    months: Annotated[int, typer.Option(min=3, max=36)] = 8,
    backfill: Annotated[int, typer.Option(min=1, help="months the first close collects")] = 3,
    scale: float = 1.0,
    profile: Annotated[
        str, typer.Option(help="messy (default here: the gates have something to decide) | default")
    ] = "messy",
    serving: Annotated[str, typer.Option(help="ray | none")] = "ray",
) -> None:
    """Synthesize months, close them one by one, and show the chain at work."""
    from cashmatch.entrypoints.cli.demo import run_demo

    run_demo(
        workspace, months=months, backfill=backfill, scale=scale, profile=profile, serving=serving
    )


# What a person asked for or pointed the command at is wrong: settings, a warehouse without the
# contract's tables, a path that is missing or of the wrong kind, no gcp credentials. One clear
# line and exit 2 (--verbose shows the traceback). Anything else is a bug or an outage and keeps
# its traceback and exit 1: a broad ValueError or KeyError here would hide those as "usage".
_USER_ERRORS: tuple[type[Exception], ...] = (
    output.UserError,
    SettingsError,
    WarehouseSchemaError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    DefaultCredentialsError,  # google-auth's message says how to set credentials up
)


def _in_words(exc: ValidationError) -> str:
    return "; ".join(
        f"{exc.title} {'.'.join(map(str, e['loc']))}: {e['msg']}"
        for e in exc.errors(include_url=False)
    )


def main() -> None:
    """Entry point: errors in the input become one clear line, not a traceback."""
    try:
        app()
    except _USER_ERRORS as exc:
        if _show_tracebacks:
            raise
        output.fail(f"{exc} ({type(exc).__name__}; --verbose shows where)")
        sys.exit(2)
