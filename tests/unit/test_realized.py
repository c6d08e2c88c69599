"""Realized performance of a month's auto decisions: the figures, the bound, the states."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cashmatch.domain.evaluation.promise import decisions_to_confirm, state_of, wilson_lower
from cashmatch.domain.evaluation.realized import holding_threshold, realize

pytestmark = pytest.mark.unit


def test_wilson_lower_bound_against_hand_computed_values():
    assert wilson_lower(0, 0) is None
    assert wilson_lower(10, 10) == pytest.approx(10 / (10 + 1.959964**2), abs=1e-6)
    # 95 of 100: the textbook Wilson interval is [0.8882, 0.9785].
    assert wilson_lower(95, 100) == pytest.approx(0.8882, abs=1e-4)
    assert wilson_lower(0, 10) == 0.0


def test_how_many_decisions_can_confirm_a_target():
    assert decisions_to_confirm(0.99) == 381
    n = decisions_to_confirm(0.99)
    assert wilson_lower(n, n) >= 0.99 > wilson_lower(n - 1, n - 1)
    assert decisions_to_confirm(1.0) == math.inf


@pytest.mark.parametrize(
    ("correct", "n", "state"),
    [
        (0, 0, "undefined"),
        (5000, 5000, "holds"),
        (317, 317, "unconfirmed"),  # too few to prove 99%, nothing wrong seen
        (300, 305, "breached"),  # point estimate already short
        (990, 1000, "breached"),  # enough to confirm, and the bound says it did not
        (1995, 2000, "holds"),
    ],
)
def test_states(correct, n, state):
    assert state_of(correct, n, 0.99) == state


def test_holding_threshold_uses_the_bound_when_it_can_and_the_point_when_it_cannot():
    # 1000 decisions, the 20 least confident wrong: the cut keeps as many as the bound allows.
    conf = np.linspace(0.999, 0.9, 1000)
    exact = np.ones(1000, dtype=bool)
    exact[-20:] = False
    cut = holding_threshold(conf, exact, 0.99)
    kept = int((conf >= cut).sum())
    assert 980 <= kept < 1000
    assert wilson_lower(int(exact[:kept].sum()), kept) >= 0.99
    assert wilson_lower(int(exact[: kept + 1].sum()), kept + 1) < 0.99
    # Ten decisions, one wrong in the middle: no bound can reach 99%; the point rule cuts above.
    conf = np.linspace(0.99, 0.9, 10)
    exact = np.ones(10, dtype=bool)
    exact[4] = False
    assert holding_threshold(conf, exact, 0.99) == pytest.approx(conf[3])
    assert holding_threshold(np.array([0.9]), np.array([False]), 0.99) is None


def _frames():
    transfers = pd.DataFrame(
        {
            "transfer_id": ["t1", "t2", "t3", "t4"],
            "direction": ["incoming", "incoming", "outgoing", "incoming"],
            "currency": ["EUR", "EUR", "PLN", "PLN"],
        }
    )
    predictions = pd.DataFrame(
        {
            "transfer_id": ["t1", "t2", "t2", "t3", "t4"],
            "invoice_id": ["i1", "i2", "i3", "i4", None],
            "confidence": [0.99, 0.95, 0.95, 0.97, 0.50],
            "decision": ["auto", "auto", "auto", "auto", "review"],
        }
    )
    matches = pd.DataFrame(
        {
            # t2 paid only i2 (the model proposed i2+i3); t9 was never answered.
            "transfer_id": ["t1", "t2", "t3", "t9"],
            "invoice_id": ["i1", "i2", "i4", "i9"],
        }
    )
    return predictions, transfers, matches


def test_realize_scores_auto_decisions_at_the_threshold_in_force():
    predictions, transfers, matches = _frames()
    r = realize(
        predictions,
        transfers,
        matches,
        month="2025-04",
        version="v1",
        threshold=0.96,
        threshold_source="model",
        target=0.99,
    )
    # At 0.96, t1 and t3 are auto (both right); t2 (0.95) goes to a person now.
    assert (r.transfers, r.auto, r.auto_correct) == (4, 2, 2)
    assert r.auto_share == 0.5 and r.auto_precision == 1.0 and r.review_share == 0.5
    assert r.exact_set_accuracy == 0.75  # t1, t3, t4 (none proposed, none paid) right; t2 not
    assert r.unseen_labels == 1
    assert r.state == "unconfirmed" and r.holds is False
    assert r.by_currency["EUR"].auto == 1 and r.by_currency["PLN"].auto == 1
    assert r.by_direction["outgoing"].auto_correct == 1
    assert r.estimate.expected_auto_precision == pytest.approx((0.99 + 0.97) / 2)
    lower = realize(
        predictions,
        transfers,
        matches,
        month="2025-04",
        version="v1",
        threshold=0.9,
        threshold_source="model",
        target=0.99,
    )
    assert (lower.auto, lower.auto_correct, lower.state) == (3, 2, "breached")
    assert lower.holding_threshold == pytest.approx(0.97)


def test_a_month_without_auto_decisions_is_undefined_not_a_breach():
    predictions, transfers, matches = _frames()
    r = realize(
        predictions,
        transfers,
        matches,
        month="2025-04",
        version="v1",
        threshold=0.999,
        threshold_source="model",
        target=0.99,
    )
    assert r.auto == 0 and r.auto_precision is None and r.auto_precision_lower is None
    assert r.state == "undefined" and r.holds is None


def test_holding_threshold_only_looks_up_from_the_threshold_in_force():
    # Wrong answers around 0.95, easy right ones below: a lower cut "holds" again by adding
    # the easy ones, which is no reason to settle more.
    conf = np.array([0.99] * 50 + [0.95] * 5 + [0.5] * 500)
    exact = np.array([True] * 50 + [False] * 5 + [True] * 500)
    assert holding_threshold(conf, exact, 0.99) == pytest.approx(0.5)
    assert holding_threshold(conf, exact, 0.99, at_least=0.9) == pytest.approx(0.99)
