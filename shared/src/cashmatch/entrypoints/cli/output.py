"""The CLI's output layer: tables and JSON. The only place that writes to the terminal."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


def fmt(value: Any) -> str:
    """A cell: floats with 3 decimals, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Print a table."""
    out = Table(title=title, title_justify="left")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*(fmt(v) for v in row))
    console.print(out)


def as_json(value: Any) -> None:
    """Print machine-readable output."""
    console.print_json(json.dumps(value, default=str))


class UserError(Exception):
    """What a person asked for cannot be done as asked; the message says why (exit 2)."""


def fail(message: str) -> None:
    """An error for a person: what is wrong, in red, on stderr."""
    errors.print(f"[red]error:[/red] {message}")
