"""The drift report: one offline HTML page per closed month."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from cashmatch.domain.monitoring.report import DriftReport
from cashmatch.service_layer.reporting.html import badge, bullet_list, esc, fmt, page, table
from cashmatch.service_layer.reporting.promise import promise_section
from cashmatch.service_layer.reporting.svg import bar_chart, histogram_chart


def _summary(report: DriftReport) -> list[str]:
    lines = []
    for c in report.columns:
        if c.drifted and c.alarming:
            lines.append(
                f"{c.column} ({c.description}): {fmt(c.reference)} → {fmt(c.current)}, "
                f"{'PSI' if c.kind == 'numeric' else 'change'} {c.statistic:+.3f} "
                f"(threshold {c.threshold:g}), p = {c.p_value:.2g}"
            )
    perf = report.performance
    if perf is not None and perf.flagged:
        lines.append(
            f"champion {perf.champion_version or ''} {perf.metric}: {perf.test_set:.3f} on the "
            f"frozen test set, {perf.month:.3f} on {report.month} (drop {perf.drop:.3f} > "
            f"{perf.max_drop:g})"
        )
    return lines


def _columns_table(report: DriftReport) -> str:
    header = [
        "column",
        "kind",
        "reference",
        "new month",
        "statistic",
        "threshold",
        "p-value",
        "drifted",
        "n reference",
        "n new",
        "test",
    ]
    rows = [
        [
            c.column,
            c.kind,
            c.reference,
            c.current,
            f"{c.statistic:+.3f}",
            c.threshold,
            f"{c.p_value:.2g}",
            ("yes" if c.drifted else "no") + ("" if c.alarming else " (watch only)"),
            c.n_reference,
            c.n_current,
            c.test,
        ]
        for c in report.columns
    ]
    return table(header, rows, flagged=[c.drifted and c.alarming for c in report.columns])


def _performance(report: DriftReport) -> list[str]:
    perf = report.performance
    if perf is None:
        return ["<p>No champion trained before this month to check.</p>"]
    rows = [
        [
            perf.metric,
            perf.champion_version or "–",
            perf.test_set,
            perf.month,
            f"{perf.drop:+.3f}",
            perf.max_drop,
            perf.flagged,
        ]
    ]
    return [
        table(
            ["metric", "champion", "frozen test set", report.month, "drop", "max drop", "flagged"],
            rows,
            flagged=[perf.flagged],
        )
    ]


def _log_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    """Ticks at 1, 2 and 5 times powers of ten, labelled in the quantity, not its log."""
    ticks = []
    for power in range(math.floor(lo), math.ceil(hi) + 1):
        for step in (1, 2, 5):
            value = math.log10(step) + power
            if lo <= value <= hi:
                ticks.append(
                    (
                        value,
                        f"{step * 10.0**power:,.0f}" if power >= 0 else f"{step * 10.0**power:g}",
                    )
                )
    return ticks


def _charts(report: DriftReport) -> list[str]:
    charts = [
        histogram_chart(
            h.edges,
            [("reference", h.reference), (report.month, h.current)],
            title=f"{h.column}: reference vs {report.month}",
            x_label=h.x_label,
            x_ticks=_log_ticks(h.edges[0], h.edges[-1]) if h.log10 else None,
        )
        for h in report.histograms
    ]
    rates = [c for c in report.columns if c.kind == "rate"]
    if rates:
        charts.append(
            bar_chart(
                [c.column for c in rates],
                [
                    ("reference", [0.0 if math.isnan(c.reference) else c.reference for c in rates]),
                    (report.month, [0.0 if math.isnan(c.current) else c.current for c in rates]),
                ],
                title=f"Rates: reference vs {report.month}",
                y_label="share of transfers",
            )
        )
    return charts


def render_drift_report(
    report: DriftReport, promise: Sequence[Mapping[str, Any]] = (), target: float = 0.99
) -> bytes:
    """The drift page of one month as HTML bytes: summary, table, performance and plots, and
    the promise month by month when `promise` (summary rows of the realized records) is given."""
    state = badge("DRIFT", "bad") if report.drifted else badge("no drift", "good")
    months = report.reference_months
    span = f"{months[0]} … {months[-1]} ({len(months)} months)" if months else "none"
    cfg = report.config
    body = [
        f"<h1>Drift report {esc(report.month)}</h1>",
        f'<p class="meta">new month {esc(report.month)} · reference {esc(span)} · '
        f"significance p &lt; {cfg.p_value:g}, PSI ≥ {cfg.psi_threshold:g}, "
        f"rate change ≥ {cfg.min_rate_change:g}</p>",
        f"<h2>Summary</h2><p>{state}</p>",
        bullet_list(_summary(report) or ["nothing drifted"]),
        "<h2>Columns</h2>",
        "<p>A column drifts when the change is both significant (p-value below the "
        "significance) and material (PSI, or the absolute change of a rate, at least the "
        "threshold). Numeric references and new values are medians. Watch-only columns are "
        "shown but never raise the alarm.</p>",
        _columns_table(report),
        "<h2>Champion on the new month</h2>",
        *_performance(report),
        "<h2>Distributions</h2>",
        f'<div class="charts">{"".join(_charts(report))}</div>',
    ]
    if promise:
        body += promise_section(promise, target)
    return page(f"cashmatch drift {report.month}", body)
