"""The promise month by month in the HTML reports: realized and estimated auto precision of the
version serving each closed month against the target line, and its auto share beside it.

Inputs are the rows of `performance_records.summary_rows` (plain dicts), so a report can be
rebuilt from the blob store alone; a month's point is the version serving at its close (the
last of the month's rows, as `cashmatch status` and the console read them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from cashmatch.service_layer.reporting.html import table
from cashmatch.service_layer.reporting.svg import PALETTE, Line, line_chart

Row = Mapping[str, Any]


def served_at_close(rows: Sequence[Row]) -> list[Row]:
    """One row per month, oldest first: the version serving at the month's close."""
    by_month: dict[str, Row] = {}
    for row in rows:  # each month's versions oldest first: the last one served the close
        by_month[row["month"]] = row
    return [by_month[m] for m in sorted(by_month)]


def _estimated(row: Row) -> float | None:
    """What the confidences promised: at the roll-out when one was recorded, else at the close."""
    at_rollout = row.get("estimated_precision_at_rollout")
    return at_rollout if at_rollout is not None else row.get("estimated_precision")


def _value(value: float | None) -> float:
    return math.nan if value is None else float(value)  # a gap in the line, not a zero


def precision_chart(rows: Sequence[Row], target: float) -> str:
    """Realized (with its Wilson lower bound) and estimated auto precision, and the target."""
    months = served_at_close(rows)
    x = [float(i) for i in range(len(months))]
    realized = [_value(r["auto_precision"]) for r in months]
    lower = [_value(r["auto_precision_lower"]) for r in months]
    estimated = [_value(_estimated(r)) for r in months]
    seen = [v for v in (*realized, *lower, *estimated) if math.isfinite(v)]
    floor = min([*seen, target])
    return line_chart(
        [
            Line("realized", x, realized, color=PALETTE[1], markers=True),
            Line("lower bound (95%)", x, lower, color=PALETTE[1], dashed=True),
            Line("estimated", x, estimated, color=PALETTE[0], markers=True),
        ],
        title="Auto precision by month (the version serving at the close)",
        x_label="closed month",
        y_label="exactly right of the auto decisions",
        x_range=(-0.5, max(len(months) - 0.5, 0.5)),
        y_range=(max(0.0, math.floor(floor * 100) / 100 - 0.01), 1.0),
        hlines=[(target, f"target {target:.0%}")],
        x_ticks=_ticks(months),
    )


def share_chart(rows: Sequence[Row]) -> str:
    """The share of each month's transfers settled without a person."""
    months = served_at_close(rows)
    x = [float(i) for i in range(len(months))]
    return line_chart(
        [
            Line(
                "auto share",
                x,
                [float(r["auto_share"]) for r in months],
                color=PALETTE[3],
                markers=True,
            )
        ],
        title="Auto share by month",
        x_label="closed month",
        y_label="settled without a person",
        x_range=(-0.5, max(len(months) - 0.5, 0.5)),
        y_range=(0.0, 1.0),
        x_ticks=_ticks(months),
    )


def _ticks(months: Sequence[Row]) -> list[tuple[float, str]]:
    step = 1 if len(months) <= 12 else 3  # every month while they fit
    return [(float(i), str(r["month"])) for i, r in enumerate(months)][::step]


def promise_section(rows: Sequence[Row], target: float) -> list[str]:
    """The report section: both charts side by side and the figures under them."""
    months = served_at_close(rows)
    if not months:
        return [
            "<h2>The promise month by month</h2>",
            "<p>No closed month has been scored yet (the monitor does it at each close).</p>",
        ]
    figures = table(
        ["month", "version", "threshold", "auto share", "realized", "lower", "estimated", "state"],
        [
            [
                r["month"],
                r["version"],
                r["threshold"],
                r["auto_share"],
                r["auto_precision"],
                r["auto_precision_lower"],
                _estimated(r),
                r["state"],
            ]
            for r in months
        ],
        flagged=[r["state"] == "breached" for r in months],
    )
    return [
        "<h2>The promise month by month</h2>",
        f"<p>Of the transfers settled without a person, at least {target:.0%} exactly right: "
        "what the serving version realized against each closed month's labels (with its "
        "Wilson 95% lower bound), what its calibrated confidences estimated before them, and "
        "the share it settled.</p>",
        f'<div class="charts">{precision_chart(rows, target)}{share_chart(rows)}</div>',
        figures,
    ]
