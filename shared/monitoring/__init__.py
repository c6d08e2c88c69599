"""Monitoring: drift of a new month against the training reference, and its HTML report.

Public face: `DriftConfig`, `DriftReport`, `compute_drift`, `performance_drift`,
`render_drift_report`.
"""

from shared.monitoring.drift import (
    ColumnDrift,
    DriftConfig,
    DriftReport,
    PerformanceDrift,
    compute_drift,
    performance_drift,
)
from shared.monitoring.report import render_drift_report

__all__ = [
    "ColumnDrift",
    "DriftConfig",
    "DriftReport",
    "PerformanceDrift",
    "compute_drift",
    "performance_drift",
    "render_drift_report",
]
