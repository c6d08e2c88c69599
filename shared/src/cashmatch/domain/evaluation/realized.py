"""What a served model actually decided in a month, scored against that month's final labels.

The promise sold to the finance team is about the auto decisions alone: of the transfers the
model settles without a person, at least `target` are exactly right. `realize` scores one
version's answers for one closed month at the threshold that was in force; `estimate` judges the
same decisions by their calibrated confidences alone, for a month whose labels are not final.
The records and their statistics are in `promise.py`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cashmatch.domain.evaluation.promise import (
    Z_95,
    Estimate,
    GroupFigures,
    Realized,
    state_of,
    wilson_lower,
)
from cashmatch.domain.matching.metrics import per_transfer


def _figures(table: pd.DataFrame) -> GroupFigures:
    n = len(table)
    auto = table["auto"].to_numpy(dtype=bool)
    exact = table["exact"].to_numpy(dtype=bool)
    n_auto = int(auto.sum())
    ok = int((auto & exact).sum())
    return GroupFigures(
        transfers=n,
        auto=n_auto,
        auto_correct=ok,
        auto_share=n_auto / n if n else 0.0,
        auto_precision=ok / n_auto if n_auto else None,
        auto_precision_lower=wilson_lower(ok, n_auto),
        exact_set_accuracy=float(exact.mean()) if n else 0.0,
        review_share=(n - n_auto) / n if n else 0.0,
    )


def estimate(confidence: np.ndarray, threshold: float) -> Estimate:
    """Expected auto share and precision of answers whose confidences are `confidence`."""
    conf = np.asarray(confidence, dtype=np.float64)
    auto = conf >= threshold
    n_auto = int(auto.sum())
    return Estimate(
        transfers=len(conf),
        auto=n_auto,
        auto_share=n_auto / len(conf) if len(conf) else 0.0,
        expected_auto_precision=float(conf[auto].mean()) if n_auto else None,
    )


def holding_threshold(
    confidence: np.ndarray, exact: np.ndarray, target: float, at_least: float = 0.0
) -> float | None:
    """The lowest confidence cut from `at_least` up whose auto decisions would have held the
    target (precision is not monotone in the cut: a lower one can hold again by adding easy
    right answers, which is not what raising a threshold is for).

    "Held" as `state_of` says it: the Wilson lower bound reaches the target; when no cut has
    decisions enough for that, the point precision does. Cuts fall only between distinct
    confidences (equal ones are all in or all out), so the answer is an observed confidence.
    None when no cut holds at all.
    """
    conf = np.asarray(confidence, dtype=np.float64)
    if len(conf) == 0:
        return None
    order = np.argsort(-conf, kind="stable")
    conf, ok = conf[order], np.asarray(exact, dtype=np.float64)[order]
    n = np.arange(1, len(conf) + 1, dtype=np.float64)
    right = np.cumsum(ok)
    p = right / n
    zz = Z_95 * Z_95
    lower = (p + zz / (2 * n) - Z_95 * np.sqrt(p * (1 - p) / n + zz / (4 * n * n))) / (1 + zz / n)
    ends = np.append(conf[1:] != conf[:-1], True) & (conf >= at_least)
    for held in (lower >= target - 1e-12, p >= target - 1e-12):
        valid = np.flatnonzero(ends & held)
        if len(valid):
            return float(conf[valid.max()])
    return None


def realize(
    predictions: pd.DataFrame,
    transfers: pd.DataFrame,
    matches: pd.DataFrame,
    *,
    month: str,
    version: str,
    threshold: float,
    threshold_source: str,
    target: float,
) -> Realized:
    """Score `predictions` (one row per predicted pair, with a transfer-level `confidence`) of
    `transfers` against `matches`, deciding "auto" at `threshold` as the replicas did."""
    answered = set(predictions["transfer_id"].astype(str))
    labelled = set(matches["transfer_id"].astype(str))
    table = per_transfer(predictions.drop(columns="decision", errors="ignore"), transfers, matches)
    table["auto"] = table["confidence"].to_numpy(dtype=np.float64) >= threshold
    keyed = transfers.assign(transfer_id=transfers["transfer_id"].astype(str)).set_index(
        "transfer_id"
    )
    table["direction"] = keyed["direction"].reindex(table["transfer_id"]).to_numpy()
    table["currency"] = keyed["currency"].reindex(table["transfer_id"]).to_numpy()
    overall = _figures(table)
    confidence = table["confidence"].to_numpy(dtype=np.float64)
    held = holding_threshold(confidence, table["exact"].to_numpy(), target, threshold)
    state = state_of(overall.auto_correct, overall.auto, target)
    return Realized(
        **overall.model_dump(),
        month=month,
        version=version,
        threshold=threshold,
        threshold_source=threshold_source,
        target=target,
        state=state,
        holds=None if state == "undefined" else state == "holds",
        unseen_labels=len(labelled - answered),
        by_direction={str(k): _figures(g) for k, g in table.groupby("direction", sort=True)},
        by_currency={str(k): _figures(g) for k, g in table.groupby("currency", sort=True)},
        estimate=estimate(confidence, threshold),
        holding_threshold=held,
        holding_auto_share=None if held is None else float((confidence >= held).mean()),
    )
