"""What a served model actually decided in a month, scored against that month's final labels.

The promise sold to the finance team is about the auto decisions alone: of the transfers the
model settles without a person, at least `target` are exactly right. This module scores one
version's answers for one closed month at the threshold that was in force, with a lower
confidence bound on the auto precision (a month has a few hundred to a few hundred thousand auto
decisions; a point estimate of 99.2% on 300 of them promises little), and estimates the same
figures from the calibrated confidences alone, for a month whose labels are not final yet.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from cashmatch.domain.matching.metrics import per_transfer

Z_95 = 1.959963984540054  # two-sided 95%: the Wilson bound is then a one-sided 97.5% bound


def wilson_lower(correct: int, n: int, z: float = Z_95) -> float | None:
    """Wilson score lower bound of a proportion; None when there is nothing to bound.

    Wilson rather than the normal approximation: near 100% with a few hundred trials the normal
    interval overshoots 1 and says nothing; Wilson stays inside [0, 1] and is close to
    Clopper–Pearson without its conservatism.
    """
    if n <= 0:
        return None
    p = correct / n
    denominator = 1 + z * z / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / denominator)


def decisions_to_confirm(target: float, z: float = Z_95) -> float:
    """The fewest auto decisions whose Wilson lower bound can reach `target` (all of them right):
    n / (n + z²) ≥ target. About 381 for 99%; infinite for 100%."""
    if target >= 1.0:
        return math.inf
    return math.ceil(target * z * z / (1.0 - target))


def state_of(correct: int, n: int, target: float) -> str:
    """holds / breached / unconfirmed / undefined, for `correct` right of `n` auto decisions.

    The promise holds when the Wilson lower bound reaches the target. Below it, a month with
    enough decisions to confirm the target at all is a breach; a smaller month is one only when
    even its point estimate falls short, else it is "unconfirmed" (317 of 317 right bound at
    98.8%: no evidence of a broken promise, only too few decisions to prove it kept).
    """
    lower = wilson_lower(correct, n)
    if lower is None:
        return "undefined"
    if lower >= target:
        return "holds"
    if n >= decisions_to_confirm(target) or correct / n < target:
        return "breached"
    return "unconfirmed"


class GroupFigures(BaseModel):
    """Auto decisions of one group of transfers (all, one direction, one currency)."""

    transfers: int
    auto: int
    auto_correct: int
    auto_share: float = Field(description="auto decisions / transfers")
    auto_precision: float | None = Field(description="exactly right / auto; None without auto")
    auto_precision_lower: float | None = Field(description="Wilson 95% lower bound")
    exact_set_accuracy: float = Field(description="all transfers, auto or not")
    review_share: float


class Estimate(BaseModel):
    """What the calibrated confidences promise before any label exists."""

    transfers: int
    auto: int
    auto_share: float
    expected_auto_precision: float | None = Field(
        description="mean confidence of the auto decisions (confidences are calibrated "
        "probabilities of the whole set being right); None without auto decisions"
    )


class Realized(GroupFigures):
    """One version's decisions on one closed month, at the threshold in force."""

    month: str
    version: str
    threshold: float
    threshold_source: str = Field(description="'model' or the guardrail override that set it")
    target: float
    state: str = Field(description="holds / breached / unconfirmed / undefined (state_of)")
    holds: bool | None = Field(description="lower bound ≥ target; None when nothing was auto")
    unseen_labels: int = Field(
        description="labelled transfers the model never answered (not booked in the month, or "
        "set aside as invalid rows): reported, not counted"
    )
    by_direction: dict[str, GroupFigures]
    by_currency: dict[str, GroupFigures]
    estimate: Estimate = Field(description="the same decisions judged by their confidences")
    holding_threshold: float | None = Field(
        description="the lowest threshold from the one in force up whose auto decisions on this "
        "month would have held the target (None when none does)"
    )


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
        estimate=estimate(table["confidence"].to_numpy(), threshold),
        holding_threshold=holding_threshold(
            table["confidence"].to_numpy(), table["exact"].to_numpy(), target, threshold
        ),
    )
