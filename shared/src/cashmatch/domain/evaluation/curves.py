"""Precision–coverage curves: what share of transfers a confidence cut settles, and how well.

Moving the confidence threshold down settles more transfers automatically (coverage) at the
price of more wrong answers (precision of exact invoice sets). `auto_rate@99` is the point of
this curve with the largest coverage whose precision is still at least 99%, so the curve and
`cashmatch.domain.matching.metrics.auto_rate_at` agree by construction: both cut only between
runs of equal confidence, because one threshold cannot split transfers that have the same score."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cashmatch.domain.matching.metrics import per_transfer

CURVE_COLUMNS = ["threshold", "n_auto", "n_correct", "coverage", "precision"]


def curve_from_scores(confidence: np.ndarray, correct: np.ndarray) -> pd.DataFrame:
    """One row per distinct confidence, highest first: settling everything at or above it."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    n = len(conf)
    if n == 0:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in CURVE_COLUMNS})
    order = np.argsort(-conf, kind="stable")
    conf, ok = conf[order], ok[order]
    cum_ok = np.cumsum(ok)
    counts = np.arange(1, n + 1)
    ends = np.append(conf[1:] != conf[:-1], True)
    return pd.DataFrame(
        {
            "threshold": conf[ends],
            "n_auto": counts[ends].astype(np.int64),
            "n_correct": cum_ok[ends].astype(np.int64),
            "coverage": counts[ends] / n,
            "precision": cum_ok[ends] / counts[ends],
        }
    )


def precision_coverage_curve(
    predictions: pd.DataFrame, transfers: pd.DataFrame, matches: pd.DataFrame
) -> pd.DataFrame:
    """Coverage and exact-set precision at every confidence threshold, for `transfers`."""
    pt = per_transfer(predictions, transfers, matches)
    return curve_from_scores(
        pt["confidence"].to_numpy(dtype=np.float64), pt["exact"].to_numpy(dtype=bool)
    )


def coverage_at(curve: pd.DataFrame, target: float = 0.99) -> float:
    """Largest coverage whose precision reaches `target` (0.0 when none does): auto_rate@target."""
    ok = curve[curve["precision"] >= target - 1e-12]
    return float(ok["coverage"].max()) if len(ok) else 0.0


def threshold_at(curve: pd.DataFrame, target: float = 0.99) -> float | None:
    """The confidence threshold that yields `coverage_at(curve, target)`, or None."""
    ok = curve[curve["precision"] >= target - 1e-12]
    if ok.empty:
        return None
    best = int(np.argmax(ok["coverage"].to_numpy()))
    return float(ok["threshold"].to_numpy()[best])


def thin(curve: pd.DataFrame, max_points: int = 300) -> pd.DataFrame:
    """At most about `max_points` rows, evenly spread over coverage, keeping both ends.

    A test set of 100k transfers has as many thresholds; a plot needs a few hundred.
    """
    if len(curve) <= max_points:
        return curve.reset_index(drop=True)
    grid = np.linspace(0.0, 1.0, max_points)
    cover = curve["coverage"].to_numpy()
    picks = np.unique(np.clip(np.searchsorted(cover, grid), 0, len(curve) - 1))
    picks = np.union1d(picks, [0, len(curve) - 1])
    return curve.iloc[picks].reset_index(drop=True)
