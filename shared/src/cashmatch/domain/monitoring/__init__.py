"""Monitoring: drift of a new month against the training reference, and its HTML report.

Public face: `DriftConfig`, `DriftReport`, `compute_drift`, `performance_drift` (the HTML report
is service_layer/reporting/drift.py)."""

from cashmatch.domain.monitoring.drift import (
    ColumnDrift,
    DriftConfig,
    DriftReport,
    PerformanceDrift,
    compute_drift,
    performance_drift,
)

__all__ = [
    "ColumnDrift",
    "DriftConfig",
    "DriftReport",
    "PerformanceDrift",
    "compute_drift",
    "performance_drift",
]
