"""The CLI's output layer: tables, lines and JSON. The only place that writes to the terminal.

For people at a terminal, lines fit its width (rich wraps text between words and shrinks
tables). For programs (a file, a pipe, a CI log) nothing is wrapped at all: every message and
every table row is one whole line, however long its paths, so a grep or a test finds a phrase
where it was written. JSON (`--json`) is plain text on stdout, never styled.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleDimensions
from rich.table import Column, Table
from rich.text import Text

# The width of a console that writes to a file or pipe: no line is ever wrapped to fit it.
UNWRAPPED = 1_000_000
# How many characters of an id a table shows (`events`, the demo); `--json` gives them whole.
SHORT_ID = 8


class _Console(Console):
    """A rich Console whose width is the terminal's, and unlimited when it writes elsewhere."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        return size if self.is_terminal else ConsoleDimensions(UNWRAPPED, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


def make_console(**options: Any) -> Console:
    """A console as the CLI's: no highlighting of numbers and paths, no wrapping off a terminal.
    Tests pass force_terminal, width and file to see what a narrow terminal shows."""
    return _Console(highlight=False, **options)


console = make_console()
errors = make_console(stderr=True)


def fmt(value: Any) -> str:
    """A cell: floats with 3 decimals, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def short(identifier: str | None) -> str | None:
    """The start of an id that a table shows (enough to tell them apart, and to type)."""
    return None if identifier is None else identifier[:SHORT_ID]


def say(text: str, *, style: str | None = None) -> None:
    """A line for people on stdout; taken as it is (no rich markup in it)."""
    console.print(Text(text, style=style or ""))


# The longest cell a column of single words may have and still never be broken (a uuid fits).
LONGEST_WORD = 40


def _words_only(cells: list[str]) -> bool:
    return all(len(c) <= LONGEST_WORD and not any(s.isspace() for s in c) for c in cells)


def _narrowest(columns: Sequence[str | Column], cells: list[list[str]], *, keep_words: bool) -> int:
    """How narrow the table can be: whole cells in the columns that keep them, the longest word
    in the others; plus each cell's padding and rule, and the outer rules."""
    total = 3 * len(columns) + 1
    for i, c in enumerate(columns):
        column = [row[i] for row in cells]
        whole = (keep_words and _words_only(column)) if isinstance(c, str) else c.no_wrap
        texts = [str(c if isinstance(c, str) else c.header), *column]
        total += max(
            (
                cell_len(part)
                for text in texts
                for part in (text.splitlines() if whole else text.split())
            ),
            default=0,
        )
    return total


def _table(columns: Sequence[str | Column], cells: list[list[str]], *, keep_words: bool) -> Table:
    out = Table(
        *(
            Column(
                c,
                overflow="fold",
                no_wrap=keep_words and _words_only([row[i] for row in cells]),
            )
            if isinstance(c, str)
            else c
            for i, c in enumerate(columns)
        ),
    )
    for row in cells:
        out.add_row(*(Text(c) for c in row))
    return out


def table(title: str, columns: Sequence[str | Column], rows: Sequence[Sequence[Any]]) -> None:
    """Print a titled table. The title is a line of its own (so it is never wrapped to the
    table's width) and the cells are plain text (a `[` in a message is not markup).

    At a narrow terminal, columns of single words (ids, months, states, numbers) keep them
    whole and the columns of text wrap between words, when that fits; when it does not, each
    row becomes a block of "column value" lines instead, so no id or path is cut into pieces
    (a squeezed table broke `m-4038` / `24c2af` / `e7` over three lines). Off a terminal
    nothing is squeezed at all."""
    say(title, style="italic")
    cells = [[fmt(v) for v in row] for row in rows]
    if _narrowest(columns, cells, keep_words=True) <= console.width:
        console.print(_table(columns, cells, keep_words=True))
    else:
        _blocks(columns, cells)


def _blocks(columns: Sequence[str | Column], cells: list[list[str]]) -> None:
    """Rows too wide for the terminal, one block each: the first cell as its heading, then one
    line per other column, its value wrapped between words (and folded only if one word is
    wider than the line)."""
    names = [str(c if isinstance(c, str) else c.header) for c in columns]
    indent = 2 + max((cell_len(n) for n in names[1:]), default=0) + 1
    for row in cells:
        console.print(Text(f"{names[0]} {row[0]}", style="bold"), overflow="fold")
        for name, value in zip(names[1:], row[1:], strict=True):
            line = Text(f"  {name:<{indent - 3}} ")
            line.append(value)
            console.print(line, overflow="fold")


def _plain(value: Any) -> Any:
    """`value` as JSON can hold it: times in ISO 8601, NaN as null, numpy numbers as numbers."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    if hasattr(value, "item"):  # a numpy or pandas scalar
        return _plain(value.item())
    return str(value)


def as_json(value: Any) -> None:
    """Print machine-readable output: JSON alone on stdout, no colour, whatever the terminal."""
    sys.stdout.write(json.dumps(_plain(value), indent=2, ensure_ascii=False, allow_nan=False))
    sys.stdout.write("\n")
    sys.stdout.flush()


class UserError(Exception):
    """What a person asked for cannot be done as asked; the message says why (exit 2)."""


def fail(message: str) -> None:
    """An error for a person: what is wrong, in red, on stderr."""
    errors.print(Text.assemble(("error:", "red"), " ", message))


def hint(message: str) -> None:
    """A dim line on stderr that goes with an error (usage, where to find help)."""
    errors.print(Text(message, style="dim"))
