"""Checks of what is typed on the command line, shared by the commands: months, service names,
event ids. Each refuses a bad value at the door with a typer.BadParameter that names it."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError

from cashmatch.domain.events import checked_month
from cashmatch.domain.subscriptions import SUBSCRIPTIONS
from cashmatch.service_layer.operations import NothingToDo, full_event_id

JSON_HELP = "print JSON on stdout instead of the table (its shape: see above)"
# The `--json` flag of every command that has one.
JsonFlag = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def month(value: str | None) -> str | None:
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


def services(values: list[str] | None) -> list[str] | None:
    """A repeatable --service option: each one a service name."""
    _check_services(values or [])
    return values


def service(value: str) -> str:
    """A SERVICE argument: a service name."""
    _check_services([value])
    return value


def subscriber(value: str | None) -> str | None:
    """A --subscriber option: a service name, or none for all of them."""
    _check_services([value] if value is not None else [], noun="subscribers")
    return value


def event_id(bus: Any, given: str) -> str:
    """The full id of the event `given` names: its id, or the start of it that `events` shows."""
    try:
        return full_event_id(bus, given)
    except NothingToDo as exc:
        raise typer.BadParameter(str(exc), param_hint="EVENT_ID") from None


def in_words(exc: ValidationError) -> str:
    """A pydantic validation error as one line: each field and what is wrong with it."""
    return "; ".join(
        f"{exc.title} {'.'.join(map(str, e['loc']))}: {e['msg']}"
        for e in exc.errors(include_url=False)
    )
