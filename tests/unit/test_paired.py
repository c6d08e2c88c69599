"""The paired comparison: it agrees with the metrics it tests, and its answers are known ones."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from cashmatch.domain.evaluation.paired import (
    OUTCOME_COLUMNS,
    compare,
    mcnemar,
    transfer_outcomes,
)
from cashmatch.domain.matching.metrics import evaluate

pytestmark = pytest.mark.unit


def random_outcomes(seed: int, n: int = 800, accuracy: float = 0.9) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    exact = rng.random(n) < accuracy
    n_true = rng.integers(0, 3, n)
    return pd.DataFrame(
        {
            "transfer_id": [f"t{i}" for i in range(n)],
            "exact": exact,
            # Rounded so that runs of equal confidence exist, which a cut cannot split.
            "confidence": np.round(np.where(exact, rng.random(n), rng.random(n) * 0.6), 2),
            "auto": exact,
            "tp": np.where(exact, n_true, 0),
            "n_pred": np.where(exact, n_true, 1),
            "n_true": n_true,
        }
    )[OUTCOME_COLUMNS]


def test_outcomes_give_back_the_metrics_of_evaluate():
    predictions = pd.DataFrame(
        {
            "transfer_id": ["a", "a", "b", "c", "d"],
            "invoice_id": ["i1", "i2", "i3", None, "i9"],
            "confidence": [0.9, 0.9, 0.8, 0.7, 0.3],
            "decision": ["auto", "auto", "auto", "review", "review"],
        }
    )
    transfers = pd.DataFrame({"transfer_id": ["a", "b", "c", "d"]})
    matches = pd.DataFrame(
        {"transfer_id": ["a", "a", "b", "d"], "invoice_id": ["i1", "i2", "i4", "i5"]}
    )
    rows = transfer_outcomes(predictions, transfers, matches)
    assert list(rows.columns) == OUTCOME_COLUMNS
    assert rows["exact"].tolist() == [True, False, True, False]
    assert rows["tp"].tolist() == [2, 0, 0, 0]
    expected = evaluate(predictions, transfers, matches)
    same = compare(rows, rows, ["auto_rate@99", "exact_set_accuracy", "pair_f1", "pair_recall"])
    for metric, diff in same.items():
        assert diff.candidate == pytest.approx(expected[metric])
        assert (diff.low, diff.high) == (0.0, 0.0)


def test_the_bootstrap_scores_each_metric_as_evaluate_does():
    rows = random_outcomes(3)
    other = random_outcomes(4)
    result = compare(rows, other, ["auto_rate@99", "auto_rate@90", "pair_f1", "pair_precision"])
    from cashmatch.domain.matching.metrics import auto_rate_at

    conf, exact = rows["confidence"].to_numpy(), rows["exact"].to_numpy()
    assert result["auto_rate@99"].candidate == auto_rate_at(conf, exact, 0.99)
    assert result["auto_rate@90"].candidate == auto_rate_at(conf, exact, 0.90)
    tp, n_pred, n_true = (rows[c].sum() for c in ("tp", "n_pred", "n_true"))
    precision, recall = tp / n_pred, tp / n_true
    assert result["pair_precision"].candidate == pytest.approx(precision)
    assert result["pair_f1"].candidate == pytest.approx(
        2 * precision * recall / (precision + recall)
    )
    for diff in result.values():
        assert diff.low <= diff.high


def test_mcnemar_counts_only_the_discordant_transfers_and_matches_the_binomial_test():
    candidate = pd.Series([True] * 12 + [False] * 9 + [True] * 100 + [False] * 5)
    champion = pd.Series([False] * 12 + [True] * 9 + [True] * 100 + [False] * 5)
    diff = mcnemar(candidate, champion, alpha=0.05)
    assert (diff.better, diff.worse, diff.n) == (12, 9, 126)
    assert diff.p_value == pytest.approx(binomtest(12, 21, 0.5).pvalue)
    assert diff.delta == pytest.approx(3 / 126)
    assert diff.direction == "tie"
    assert "12 better, 9 worse of 126; McNemar p=0.66" in diff.words()


@pytest.mark.parametrize("better", range(0, 31))
def test_mcnemar_p_value_and_interval_never_disagree(better):
    worse = 30 - better
    candidate = pd.Series([True] * better + [False] * worse + [True] * 50)
    champion = pd.Series([False] * better + [True] * worse + [True] * 50)
    diff = mcnemar(candidate, champion, alpha=0.05)
    assert (diff.p_value < 0.05) == (diff.direction != "tie")


def test_the_comparison_is_paired_deterministic_and_order_free():
    a, b = random_outcomes(1), random_outcomes(2)
    first = compare(a, b, ["auto_rate@99", "pair_f1"], seed=7)
    again = compare(
        a.sample(frac=1.0, random_state=5), b.iloc[::-1], ["auto_rate@99", "pair_f1"], seed=7
    )
    assert first == again
    # Paired: a model against itself differs in no resample at all.
    assert compare(a, a, ["auto_rate@99"])["auto_rate@99"].high == 0.0


def test_outcomes_of_different_transfers_cannot_be_compared():
    a = random_outcomes(1)
    with pytest.raises(ValueError, match="differ in 2 transfer"):
        compare(a, a.assign(transfer_id=a["transfer_id"].replace({"t0": "x"})), ["pair_f1"])
    with pytest.raises(ValueError, match="champion outcomes lack column"):
        compare(a, a.drop(columns="confidence"), ["pair_f1"])
    with pytest.raises(ValueError, match="no paired comparison for metric"):
        compare(a, a, ["top1_accuracy"])
