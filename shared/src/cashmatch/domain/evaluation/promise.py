"""The promise's records: what a served version decided on its own in a month, and whether that
held the target. Plain values and the statistics they need (no model, no pandas): the guardrail
reads them in the deployer's image, which carries no scikit-learn.

The auto precision comes with a lower confidence bound: a month has a few hundred to a few
hundred thousand auto decisions, and a point estimate of 99.2% on 300 of them promises little.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

Z_95 = 1.959963984540054  # two-sided 95%: the Wilson bound is then a one-sided 97.5% bound
# The format of a stored `Realized` record. 1: the first records (no `record_format`, no `state`:
# `holds` alone); 2: `state` and `record_format`. Raise it when a field changes meaning or
# becomes required, and teach `performance_records.parse_record` to read the old one.
RECORD_FORMAT = 2


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

    record_format: int = Field(
        default=RECORD_FORMAT, description="the stored format (RECORD_FORMAT when written)"
    )
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
    holding_auto_share: float | None = Field(
        default=None,
        description="the share of the month's transfers auto-settled at holding_threshold: what "
        "raising the threshold to it costs",
    )
