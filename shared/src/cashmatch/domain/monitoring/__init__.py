"""Monitoring: drift of a new month against the training reference, and its HTML report.

Public face: `DriftConfig`, `DriftReport`, `compute_drift`, `performance_drift`,
`render_drift_report`.
"""

from cashmatch.domain.monitoring.drift import (
    ColumnDrift,
    DriftConfig,
    DriftReport,
    PerformanceDrift,
    compute_drift,
    performance_drift,
)
from cashmatch.service_layer.reporting.drift import render_drift_report

__all__ = [
    "ColumnDrift",
    "DriftConfig",
    "DriftReport",
    "PerformanceDrift",
    "compute_drift",
    "performance_drift",
    "render_drift_report",
]
