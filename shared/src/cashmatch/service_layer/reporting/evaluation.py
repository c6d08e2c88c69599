"""The evaluator's report: one offline HTML page per judged model version.

It shows what the verdict was based on: the precision–coverage curves of candidate, champion and
rules baseline with the 99% line (the business target), their metrics side by side, the verdict
in words, and how the champions have done month after month. Inputs are plain data (metric
dicts, curve frames, a list of history rows), so the page can be rebuilt from the registry alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from cashmatch.domain.evaluation.curves import coverage_at, thin
from cashmatch.domain.evaluation.curves import precision_coverage_curve as _curve
from cashmatch.domain.model_records import Verdict
from cashmatch.service_layer.reporting.html import badge, bullet_list, esc, page, table
from cashmatch.service_layer.reporting.promise import promise_section
from cashmatch.service_layer.reporting.svg import PALETTE, Line, Marker, line_chart

# Candidate, champion and rules keep the same colour in every chart of the report.
ROLES = ("candidate", "champion", "rules")
_COLORS = dict(zip(ROLES, PALETTE, strict=False))
PRIMARY = "auto_rate@99"
# The metrics a reader looks at first, in this order; any others follow alphabetically.
_ORDER = (
    PRIMARY,
    "exact_set_accuracy",
    "pair_precision",
    "pair_recall",
    "pair_f1",
    "top1_accuracy",
    "auto_decision_rate",
    "auto_decision_precision",
    "single_exact_set_accuracy",
    "multi_exact_set_accuracy",
    "none_exact_set_accuracy",
    "n_transfers",
    "n_multi",
    "n_none",
)
_HISTORY_COLUMNS = (PRIMARY, "exact_set_accuracy", "pair_f1", "top1_accuracy", "n_transfers")

HistoryRow = tuple[str, str, Mapping[str, float]]


def precision_coverage_curve(
    predictions: pd.DataFrame, transfers: pd.DataFrame, matches: pd.DataFrame
) -> pd.DataFrame:
    """Coverage vs exact-set precision as the confidence threshold moves (one row per cut)."""
    return _curve(predictions, transfers, matches)


def _metric_names(metrics: Mapping[str, Mapping[str, float] | None]) -> list[str]:
    present = {name for values in metrics.values() if values for name in values}
    first = [name for name in _ORDER if name in present]
    return first + sorted(present - set(first))


def metrics_table(metrics: Mapping[str, Mapping[str, float] | None]) -> str:
    """Metrics side by side, one column per role, plus the candidate's gain over the champion."""
    roles = [r for r in ROLES if r in metrics] + [r for r in metrics if r not in ROLES]
    candidate, champion = metrics.get("candidate"), metrics.get("champion")
    with_delta = bool(candidate) and bool(champion)
    header = ["metric", *roles] + (["candidate − champion"] if with_delta else [])
    rows = []
    for name in _metric_names(metrics):
        row: list[object] = [name]
        row += [(metrics[r] or {}).get(name) for r in roles]
        if with_delta:
            assert candidate is not None and champion is not None
            both = name in candidate and name in champion and not name.startswith("n_")
            row.append(f"{candidate[name] - champion[name]:+.3f}" if both else None)
        rows.append(row)
    return table(header, rows)


def _y_floor(curves: Mapping[str, pd.DataFrame], target: float) -> float:
    """Zoom on the interesting band: from a bit below the lowest precision worth showing."""
    lows = [float(c["precision"].min()) for c in curves.values() if len(c)]
    lowest = min(lows, default=target)
    return max(0.0, min(target - 0.05, int(lowest * 20) / 20))


def curves_chart(curves: Mapping[str, pd.DataFrame | None], target: float = 0.99) -> str:
    """The precision–coverage curves of every role on one plot, with the target line."""
    present = {role: c for role, c in curves.items() if c is not None and len(c)}
    lines, markers = [], []
    for index, (role, curve) in enumerate(present.items()):
        color = _COLORS.get(role, PALETTE[index % len(PALETTE)])
        small = thin(curve)
        rate = coverage_at(curve, target)
        lines.append(
            Line(
                f"{role} (auto@{target:.0%} = {rate:.3f})",
                small["coverage"].tolist(),
                small["precision"].tolist(),
                color=color,
                dashed=role == "rules",
            )
        )
        if rate > 0:
            markers.append(
                Marker(rate, target, color, f"{role}: {rate:.3f} settled at {target:.0%}")
            )
    return line_chart(
        lines,
        title="Precision of exact invoice sets vs share settled automatically",
        x_label="coverage (share of transfers settled without a person)",
        y_label="precision (exact set)",
        x_range=(0.0, 1.0),
        y_range=(_y_floor(present, target), 1.005),  # keep precision 1.0 off the frame
        hlines=[(target, f"{target:.0%} target")],
        markers=markers,
        legend="bottom-left",
    )


def history_table(history: Sequence[HistoryRow]) -> str:
    """One row per month: which champion, and its metrics."""
    rows = [
        [month, version, *(metrics.get(c) for c in _HISTORY_COLUMNS)]
        for month, version, metrics in history
    ]
    return table(["month", "champion", *_HISTORY_COLUMNS], rows)


def history_chart(history: Sequence[HistoryRow], metric: str = PRIMARY) -> str:
    """`metric` of the champion month by month (one point per month)."""
    points = [(i, float(m[metric])) for i, (_, _, m) in enumerate(history) if metric in m]
    ticks = [(float(i), month) for i, (month, _, _) in enumerate(history)]
    # Label every month only while they fit; beyond a year show every third.
    step = 1 if len(ticks) <= 12 else 3
    values = [y for _, y in points]
    low = min(values, default=0.0)
    return line_chart(
        [
            Line(
                f"champion {metric}",
                [float(x) for x, _ in points],
                values,
                color=_COLORS["champion"],
                markers=True,
            )
        ],
        title=f"Champion {metric} by month",
        x_label="month",
        y_label=metric,
        x_range=(-0.5, max(len(history) - 0.5, 0.5)),
        y_range=(max(0.0, math.floor(low * 10) / 10 - 0.1), 1.0),
        x_ticks=ticks[::step],
    )


def render_evaluation_report(
    verdict: Verdict,
    *,
    curves: Mapping[str, pd.DataFrame | None],
    champion_history: Sequence[HistoryRow] = (),
    month: str | None = None,
    target_precision: float = 0.99,
    promise: Sequence[Mapping[str, Any]] = (),
) -> bytes:
    """The whole evaluation page of `verdict` as HTML bytes.

    `curves` are keyed by role ("candidate", "champion", "rules"; a missing or None entry is
    left out); `champion_history` rows are (month, version, metrics), oldest first; `promise`
    the summary rows of the realized records (`performance_records.summary_rows`).
    """
    version, passed, reasons = verdict.version, verdict.passed, verdict.reasons
    metrics = verdict.metrics_by_role()
    champion_version, test_set_version = verdict.champion_version, verdict.test_set_version
    newest_month_metrics = verdict.newest_month_metrics
    decided_at = verdict.decided_at.isoformat(timespec="seconds")
    outcome = badge("PASSED — new champion", "good") if passed else badge("REJECTED", "bad")
    facts = [f"candidate <b>{esc(version)}</b>"]
    if month:
        facts.append(f"month {esc(month)}")
    facts.append(f"champion {esc(champion_version or 'none (first model)')}")
    if test_set_version:
        facts.append(f"frozen test set {esc(test_set_version)}")
    if decided_at:
        facts.append(f"decided {esc(decided_at)}")
    body = [
        f"<h1>Evaluation of {esc(version)}</h1>",
        f'<p class="meta">{" · ".join(facts)}</p>',
        f"<h2>Verdict</h2><p>{outcome}</p>",
        bullet_list(list(reasons) or ["no reason recorded"]),
        "<h2>Precision–coverage on the frozen test set</h2>",
        "<p>Each curve moves the confidence threshold from high to low: further right, more "
        "transfers are settled automatically; lower, more of them get a wrong set of invoices. "
        f"Circles mark the operating point at {target_precision:.0%} precision "
        "(auto_rate@99).</p>",
        curves_chart(curves, target_precision),
        "<h2>Metrics on the frozen test set</h2>",
        metrics_table(metrics),
    ]
    if newest_month_metrics:
        body += [
            f"<h2>Newest month{' ' + esc(month) if month else ''}</h2>",
            "<p>The champion (trained before this month) and the rules on the month alone.</p>",
            metrics_table(newest_month_metrics),
        ]
    body.append("<h2>Champions month by month</h2>")
    if champion_history:
        body += [history_table(champion_history), history_chart(champion_history)]
    else:
        body.append("<p>No champion history yet.</p>")
    body += promise_section(promise, target_precision)
    return page(f"cashmatch evaluation {version}", body)
