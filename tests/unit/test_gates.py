"""The champion decision on constructed per-transfer outcomes whose answer is known.

Each case builds the candidate's and the champion's outcomes on the same 3,000 test transfers,
runs the paired comparison the evaluator runs (`paired.compare`) and then `decide`.
"""

import numpy as np
import pandas as pd
import pytest

from cashmatch.domain.evaluation.differences import Difference
from cashmatch.domain.evaluation.gates import QualityGates, decide, newer_months
from cashmatch.domain.evaluation.paired import OUTCOME_COLUMNS, compare

pytestmark = pytest.mark.unit

GATES = QualityGates(floor_auto_rate=0.5)
GOOD = {"auto_rate@99": 0.80, "exact_set_accuracy": 0.90, "pair_f1": 0.90}
N = 3000


def outcomes(wrong: set[int], *, wrong_confidence: float = 0.1, sloppy: bool = False):
    """N single-invoice transfers, all exactly right at confidence 0.9 but those in `wrong`
    (at `wrong_confidence`, predicting one wrong invoice; three when `sloppy`)."""
    exact = np.array([i not in wrong for i in range(N)])
    rows = pd.DataFrame(
        {
            "transfer_id": [f"t{i:05d}" for i in range(N)],
            "exact": exact,
            "confidence": np.where(exact, 0.9, wrong_confidence),
            "auto": exact,
            "tp": exact.astype(int),
            "n_pred": np.where(exact, 1, 3 if sloppy else 1),
            "n_true": np.ones(N, dtype=int),
        }
    )
    return rows[OUTCOME_COLUMNS]


def judge(candidate, champion, *, fresher: bool, gates: QualityGates = GATES):
    comparison = compare(
        candidate,
        champion,
        gates.compared_metrics(),
        alpha=gates.alpha,
        resamples=gates.bootstrap_resamples,
        seed=gates.bootstrap_seed,
    )
    metrics = {m: d.candidate for m, d in comparison.items()}
    champion_metrics = {m: d.champion for m, d in comparison.items()}
    return decide(metrics, champion_metrics, gates, comparison=comparison, fresher=fresher)


def test_first_model_needs_only_the_floors():
    passed, reasons = decide(GOOD, None, GATES)
    assert passed
    assert "no champion yet" in reasons[0]
    passed, reasons = decide({**GOOD, "auto_rate@99": 0.2}, None, GATES)
    assert not passed
    assert any("auto_rate@99 0.2000 < floor 0.5000" in r for r in reasons)


def test_every_floor_of_a_first_model_counts_and_a_missing_metric_fails_it():
    floor = GATES.floor_exact_set_accuracy
    passed, reasons = decide({**GOOD, "exact_set_accuracy": floor - 0.01}, None, GATES)
    assert not passed
    assert any(r.startswith("exact_set_accuracy") and "< floor" in r for r in reasons)
    assert any(r.startswith("auto_rate@99") and "≥ floor" in r for r in reasons)
    passed, reasons = decide({"auto_rate@99": 0.8}, None, GATES)
    assert not passed
    assert any("exact_set_accuracy nan < floor" in r for r in reasons)


def test_a_fresher_candidate_tied_with_a_saturated_champion_is_promoted():
    # Both settle every transfer at 99% (auto_rate@99 = 1.0, nothing left to beat); the
    # candidate is better on every metric by less than the old 0.002 margin.
    champion = outcomes(set(range(0, 20)))
    candidate = outcomes(set(range(12, 27)))  # 12 fixed, 7 new errors: 15 wrong instead of 20
    passed, reasons = judge(candidate, champion, fresher=True)
    assert passed
    assert reasons[0].startswith("promoted: not significantly worse and trained on newer months")
    assert reasons[0].endswith(
        "(exact-set: 12 better, 7 worse of 3,000; McNemar p=0.36; "
        "Δ auto_rate@99 +0.0000, 95% CI [+0.0000, +0.0000])"
    )
    primary = next(r for r in reasons if r.startswith("primary "))
    assert "auto_rate@99 1.0000 vs champion 1.0000" in primary
    assert any("no significant difference (the interval contains 0)" in r for r in reasons)


def test_the_same_tie_without_newer_months_is_refused():
    passed, reasons = judge(outcomes(set(range(12, 27))), outcomes(set(range(20))), fresher=False)
    assert not passed
    assert reasons[0].startswith(
        "refused: not significantly better and not trained on newer months"
    )


def test_a_significantly_worse_candidate_is_refused_however_fresh():
    champion = outcomes(set(range(20)))
    # 90 confident mistakes: it can settle far fewer transfers at 99% precision.
    candidate = outcomes(set(range(90)), wrong_confidence=0.95)
    passed, reasons = judge(candidate, champion, fresher=True)
    assert not passed
    assert reasons[0].startswith("refused: significantly worse on auto_rate@99")
    assert "0 better, 70 worse of 3,000; McNemar p=" in reasons[0]
    primary = next(r for r in reasons if r.startswith("primary "))
    assert "significantly worse (the interval is below 0)" in primary


def test_a_significantly_better_candidate_is_promoted_without_newer_months():
    champion = outcomes(set(range(120)), wrong_confidence=0.95)  # auto_rate@99 far below 1
    candidate = outcomes(set(range(20)))
    passed, reasons = judge(candidate, champion, fresher=False)
    assert passed
    assert reasons[0].startswith("promoted: significantly better on auto_rate@99")
    assert "not trained on newer months than the champion" in reasons


def test_a_guard_regression_beyond_its_noise_refuses_a_fresher_tie():
    # Same transfers wrong at the same confidence (auto_rate and exact-set identical), but on
    # each the candidate proposes three wrong invoices instead of one: pair_f1 drops.
    wrong = set(range(150))
    passed, reasons = judge(outcomes(wrong, sloppy=True), outcomes(wrong), fresher=True)
    assert not passed
    assert reasons[0].startswith("refused: pair_f1 regresses beyond its noise")
    guard = next(r for r in reasons if r.startswith("guard pair_f1"))
    assert guard.endswith("regresses beyond its noise")
    assert any(r.startswith("guard exact_set_accuracy") and "no regression" in r for r in reasons)


def test_a_significant_guard_drop_within_the_tolerance_does_not_block():
    wrong = set(range(150))
    tolerant = GATES.model_copy(update={"max_guard_regression": 0.05})
    passed, reasons = judge(
        outcomes(wrong, sloppy=True), outcomes(wrong), fresher=True, gates=tolerant
    )
    assert passed
    assert any("a significant drop within the tolerated 0.0500" in r for r in reasons)


def test_the_decision_is_the_same_on_every_run():
    champion, candidate = outcomes(set(range(20))), outcomes(set(range(12, 27)))
    assert judge(candidate, champion, fresher=True) == judge(candidate, champion, fresher=True)


def test_a_champion_without_paired_differences_cannot_be_judged():
    with pytest.raises(ValueError, match="needs paired differences"):
        decide(GOOD, GOOD, GATES)
    tie = Difference("auto_rate@99", 1.0, 1.0, 0.0, 0.0, 0.95, "paired bootstrap", N)
    with pytest.raises(ValueError, match="exact_set_accuracy"):
        decide(GOOD, GOOD, GATES, comparison={"auto_rate@99": tie})


def test_newer_months_compares_the_latest_month_trained_on():
    assert newer_months(["2025-01", "2025-02", "2025-03"], ["2025-01", "2025-02"])
    assert not newer_months(["2025-02", "2025-03"], ["2025-01", "2025-03"])
    assert not newer_months(["2025-01"], ["2025-02"])
    assert newer_months(["2025-01"], [])
    assert not newer_months([], ["2025-01"])


def test_a_metric_without_a_paired_comparison_is_refused_as_a_gate():
    with pytest.raises(ValueError, match="top1_accuracy.*no paired comparison"):
        QualityGates(guard_metrics=("exact_set_accuracy", "top1_accuracy"))
    with pytest.raises(ValueError, match="auto_rate@150.*no paired comparison"):
        QualityGates(primary_metric="auto_rate@150")
