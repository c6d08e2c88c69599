"""Offline HTML reports: the evaluator's verdict page and the monitor's drift page.

Public face: `render_evaluation_report`, `precision_coverage_curve`, `champion_history`, and
where reports, curves and per-transfer outcomes are stored (`save_report`, `save_curve`,
`load_curve`, `save_outcomes`, `load_outcomes`).
(`render_drift_report` is in `service_layer/reporting/drift.py`.)
"""

from cashmatch.service_layer.reporting.evaluation import (
    precision_coverage_curve,
    render_evaluation_report,
)
from cashmatch.service_layer.reporting.history import champion_history
from cashmatch.service_layer.reporting.store import (
    load_curve,
    load_outcomes,
    report_key,
    save_curve,
    save_outcomes,
    save_report,
)

__all__ = [
    "champion_history",
    "load_curve",
    "load_outcomes",
    "precision_coverage_curve",
    "render_evaluation_report",
    "report_key",
    "save_curve",
    "save_outcomes",
    "save_report",
]
