"""One signal of the new month against the reference: its drift verdict (numeric or rate) and
its histogram; and the champion's performance drop."""

from __future__ import annotations

import math

import numpy as np

from cashmatch.domain.monitoring.report import ColumnDrift, DriftConfig, Histogram, PerformanceDrift
from cashmatch.domain.monitoring.stats import ks_p_value, psi, two_proportion_p_value

PRIMARY = "auto_rate@99"


def numeric_drift(
    column: str,
    reference: np.ndarray,
    current: np.ndarray,
    config: DriftConfig,
    description: str,
) -> ColumnDrift:
    """PSI (material) and KS (significant) of one numeric signal."""
    reference = reference[np.isfinite(reference)]
    current = current[np.isfinite(current)]
    value = psi(reference, current, config.bins)
    _, p_value = ks_p_value(reference, current)
    return ColumnDrift(
        column=column,
        kind="numeric",
        test="PSI + KS",
        statistic=value,
        p_value=p_value,
        threshold=config.psi_threshold,
        drifted=value >= config.psi_threshold and p_value < config.p_value,
        reference=float(np.median(reference)) if len(reference) else math.nan,
        current=float(np.median(current)) if len(current) else math.nan,
        n_reference=len(reference),
        n_current=len(current),
        description=description,
    )


def rate_drift(
    column: str,
    reference: np.ndarray,
    current: np.ndarray,
    config: DriftConfig,
    description: str,
    *,
    alternative: str = "two-sided",
) -> ColumnDrift:
    """Two-proportion z-test (significant) and absolute change (material) of one rate."""
    n_ref, n_cur = len(reference), len(current)
    k_ref, k_cur = int(np.sum(reference)), int(np.sum(current))
    ref_rate = k_ref / n_ref if n_ref else math.nan
    cur_rate = k_cur / n_cur if n_cur else math.nan
    change = cur_rate - ref_rate if n_ref and n_cur else 0.0
    p_value = two_proportion_p_value(k_ref, n_ref, k_cur, n_cur, alternative=alternative)
    material = (
        -change >= config.min_rate_change
        if alternative == "less"
        else abs(change) >= config.min_rate_change
    )
    return ColumnDrift(
        column=column,
        kind="rate",
        test="z-test" + (" (drop)" if alternative == "less" else ""),
        statistic=float(change),
        p_value=p_value,
        threshold=config.min_rate_change,
        drifted=material and p_value < config.p_value,
        reference=ref_rate,
        current=cur_rate,
        n_reference=n_ref,
        n_current=n_cur,
        description=description,
    )


def histogram(
    column: str,
    x_label: str,
    reference: np.ndarray,
    current: np.ndarray,
    bins: int = 24,
    *,
    log10: bool = False,
) -> Histogram:
    """Shares over equal-width bins spanning the 1st–99th percentiles of both samples."""
    both = np.concatenate([reference, current])
    both = both[np.isfinite(both)]
    if len(both) == 0:
        return Histogram(column, x_label, [0.0, 1.0], [0.0], [0.0], log10)
    lo, hi = np.quantile(both, [0.01, 0.99])
    if hi <= lo:
        lo, hi = float(both.min()), float(both.max()) + 1.0
    edges = np.linspace(lo, hi, bins + 1)

    def shares(values: np.ndarray) -> list[float]:
        values = values[np.isfinite(values)]
        if len(values) == 0:
            return [0.0] * bins
        # Outliers go to the end bins, so the shares still add up to one.
        counts = np.histogram(np.clip(values, lo, hi), edges)[0]
        return (counts / len(values)).tolist()

    return Histogram(column, x_label, edges.tolist(), shares(reference), shares(current), log10)


def performance_drift(
    test_metrics: dict[str, float] | None,
    month_metrics: dict[str, float] | None,
    *,
    max_drop: float = 0.05,
    metric: str = PRIMARY,
    champion_version: str | None = None,
) -> PerformanceDrift | None:
    """Flag the champion when `metric` on the new month is more than `max_drop` below its
    frozen-test-set value; None when either side lacks the metric."""
    if not test_metrics or not month_metrics:
        return None
    if metric not in test_metrics or metric not in month_metrics:
        return None
    drop = float(test_metrics[metric]) - float(month_metrics[metric])
    return PerformanceDrift(
        metric=metric,
        test_set=float(test_metrics[metric]),
        month=float(month_metrics[metric]),
        drop=drop,
        max_drop=max_drop,
        flagged=drop > max_drop,
        champion_version=champion_version,
    )
