"""The statistics behind the drift verdicts: population stability index, two-sample
Kolmogorov–Smirnov test, pooled two-proportion z-test."""

from __future__ import annotations

import math

import numpy as np

_EPS = 1e-4  # PSI smoothing: an empty bin would make the log ratio infinite


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index over quantile bins of `reference`."""
    if len(reference) == 0 or len(current) == 0:
        return 0.0
    edges = np.unique(np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) < 2:
        # A constant reference: one bin for its value, one for anything else.
        edges = np.array([edges[0], np.nextafter(edges[0], np.inf)])
    edges[0], edges[-1] = -np.inf, np.inf
    ref = np.histogram(reference, edges)[0] / len(reference)
    cur = np.histogram(current, edges)[0] / len(current)
    ref, cur = np.clip(ref, _EPS, None), np.clip(cur, _EPS, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def ks_p_value(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov statistic and p-value (1.0 when a sample is empty)."""
    if len(reference) == 0 or len(current) == 0:
        return 0.0, 1.0
    # scipy.stats costs about a second to import: only the monitor needs it, so load it here.
    from scipy import stats

    result = stats.ks_2samp(reference, current)
    return float(result.statistic), float(result.pvalue)


def two_proportion_p_value(
    k_ref: int, n_ref: int, k_cur: int, n_cur: int, *, alternative: str = "two-sided"
) -> float:
    """p-value of the pooled two-proportion z-test; `alternative="less"`: the new rate is lower."""
    if n_ref == 0 or n_cur == 0:
        return 1.0
    pooled = (k_ref + k_cur) / (n_ref + n_cur)
    spread = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_ref + 1.0 / n_cur))
    if spread == 0.0:
        return 1.0  # both rates 0 or both 1: nothing changed
    z = (k_cur / n_cur - k_ref / n_ref) / spread
    if alternative == "less":
        return 0.5 * math.erfc(-z / math.sqrt(2.0))
    return math.erfc(abs(z) / math.sqrt(2.0))
