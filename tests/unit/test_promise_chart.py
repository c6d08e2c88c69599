"""The promise chart of the HTML reports: one point per realized month (the version serving at
its close), the estimate beside it, the target line, and the auto share in its own chart."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from cashmatch.domain.model_records import Verdict
from cashmatch.service_layer.reporting.evaluation import render_evaluation_report
from cashmatch.service_layer.reporting.promise import precision_chart, promise_section, share_chart


def _row(month, version, precision, lower, share, state="holds", at_rollout=None):
    return {
        "month": month,
        "version": version,
        "threshold": 0.9,
        "auto_share": share,
        "auto_precision": precision,
        "auto_precision_lower": lower,
        "estimated_precision": 0.995,
        "estimated_precision_at_rollout": at_rollout,
        "state": state,
    }


ROWS = [
    _row("2025-04", "v1", 0.996, 0.991, 0.61, at_rollout=0.993),
    _row("2025-05", "v1", 0.970, 0.962, 0.64, state="breached"),
    _row("2025-05", "v2", 0.999, 0.995, 0.55),  # served the close of May: May's point
    _row("2025-06", "v2", None, None, 0.0, state="undefined"),
]


def _polyline(svg: str, label: str) -> list[tuple[float, float]]:
    found = re.search(rf'<polyline points="([^"]*)"[^>]*><title>{re.escape(label)}</title>', svg)
    assert found, f"no {label} line"
    return [tuple(map(float, p.split(","))) for p in found.group(1).split()]


def test_one_realized_point_per_month_and_the_target_line():
    svg = precision_chart(ROWS, 0.99)
    # June settled nothing: no precision, a gap rather than a zero; May is v2's 99.9%.
    realized = _polyline(svg, "realized")
    assert len(realized) == 2
    assert len(_polyline(svg, "estimated")) == 3
    assert svg.count("target 99%") == 1
    (target_y,) = re.findall(r'<line x1="[^"]*" y1="([^"]*)"[^>]*stroke-dasharray="3 3"', svg)
    # The SVG's y grows downwards: April and May (99.6%, 99.9%) are drawn above the target.
    assert all(y < float(target_y) for _, y in realized)
    assert "<title>lower bound (95%)</title>" in svg


def test_the_auto_share_chart_has_every_month_and_the_section_flags_the_breach():
    assert len(_polyline(share_chart(ROWS), "auto share")) == 3
    section = "".join(promise_section(ROWS, 0.99))
    assert section.count("<svg") == 2
    assert section.count('<tr class="flag">') == 0, "May's point is v2's, which held"
    breached = "".join(promise_section(ROWS[:2], 0.99))
    assert breached.count('<tr class="flag">') == 1


@pytest.mark.parametrize("rows", [[], ROWS])
def test_the_evaluation_report_carries_the_section(rows):
    verdict = Verdict(
        version="v3",
        passed=True,
        reasons=["better"],
        metrics={"auto_rate@99": 0.5},
        baseline_metrics={},
        champion_version=None,
        champion_metrics=None,
        decided_at=dt.datetime(2025, 7, 1, tzinfo=dt.UTC),
        event_id="e-verdict",
        caused_by="e-trained",
    )
    page = render_evaluation_report(verdict, curves={}, promise=rows).decode()
    assert "The promise month by month" in page
    assert page.count("target 99%") == (1 if rows else 0)
