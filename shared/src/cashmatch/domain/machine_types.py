"""Which machine trains a month: a table from the month's size to a Vertex AI machine type.

Written as CASHMATCH_VERTEX_MACHINE_TYPES, e.g. "<=50000:n1-standard-4,<=300000:n1-highmem-8,
*:n1-highmem-16": the first row whose bound holds the month's transfers wins, and "*" (which
must come last) takes every bigger month. The trainer holds about one month at a time (the
months before it are kept as fitted rows of a bounded sample), so memory grows with the month,
not with the history: the month's size is what picks the machine.
"""

from __future__ import annotations

import re

DEFAULT_MACHINE_TYPES = "<=50000:n1-standard-4,<=300000:n1-highmem-8,*:n1-highmem-16"
# Vertex AI machine types: a family and a shape (n1-standard-8, e2-highmem-16, a2-highgpu-1g).
_MACHINE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)+$")

MachineTable = tuple[tuple[int | None, str], ...]  # (bound or None for "*", machine type)


def parse_machine_types(text: str) -> MachineTable:
    """The table from its text; ValueError naming the bad row and what is wrong with it."""
    rows: list[tuple[int | None, str]] = []
    items = [item.strip() for item in text.split(",")]
    for n, item in enumerate(items, start=1):
        bound_text, sep, machine = (part.strip() for part in item.partition(":"))
        where = f"row {n} {item!r} of {text!r}"
        if not sep:
            raise ValueError(f"{where}: expected '<=TRANSFERS:MACHINE' or '*:MACHINE'")
        if not _MACHINE.match(machine):
            raise ValueError(f"{where}: {machine!r} is not a machine type like n1-standard-8")
        if rows and rows[-1][0] is None:
            raise ValueError(f"{where}: nothing may follow the '*' row")
        if bound_text == "*":
            rows.append((None, machine))
            continue
        digits = bound_text.removeprefix("<=").replace("_", "")
        if not bound_text.startswith("<=") or not digits.isdigit():
            raise ValueError(f"{where}: the bound must be '<=N' (transfers a month) or '*'")
        bound = int(digits)
        if rows and bound <= (rows[-1][0] or 0):
            raise ValueError(f"{where}: bounds must grow from row to row")
        rows.append((bound, machine))
    if rows[-1][0] is not None:
        raise ValueError(f"{text!r}: the last row must be '*:MACHINE' (any bigger month)")
    return tuple(rows)


def machine_for(table: MachineTable, month_transfers: int) -> str:
    """The machine type of a month with `month_transfers` transfers."""
    for bound, machine in table:
        if bound is None or month_transfers <= bound:
            return machine
    raise AssertionError("a parsed table ends with '*'")  # parse_machine_types guarantees it
