"""Monitoring: drift of a new month against the training reference, and the champion's ageing
(the HTML report is service_layer/reporting/drift.py)."""

from cashmatch.domain.monitoring.comparisons import performance_drift
from cashmatch.domain.monitoring.drift import compute_drift
from cashmatch.domain.monitoring.report import (
    ColumnDrift,
    DriftConfig,
    DriftReport,
    PerformanceDrift,
)

__all__ = [
    "ColumnDrift",
    "DriftConfig",
    "DriftReport",
    "PerformanceDrift",
    "compute_drift",
    "performance_drift",
]
