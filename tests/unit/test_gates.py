import pytest

from cashmatch.domain.evaluation.gates import QualityGates, decide

pytestmark = pytest.mark.unit

GATES = QualityGates(min_gain=0.01, max_guard_regression=0.005, floor_auto_rate=0.5)
GOOD = {"auto_rate@99": 0.80, "exact_set_accuracy": 0.90, "pair_f1": 0.90}


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


def test_candidate_must_beat_by_the_margin():
    champion = {**GOOD}
    passed, reasons = decide({**GOOD, "auto_rate@99": 0.805}, champion, GATES)
    assert not passed
    assert "gain +0.0050 < required 0.0100" in reasons[1]
    passed, _ = decide({**GOOD, "auto_rate@99": 0.82}, champion, GATES)
    assert passed


def test_a_guard_regression_blocks_promotion_and_says_so():
    candidate = {**GOOD, "auto_rate@99": 0.9, "pair_f1": 0.88}
    passed, reasons = decide(candidate, GOOD, GATES)
    assert not passed
    assert any("pair_f1" in r and "regresses by 0.0200" in r for r in reasons)
