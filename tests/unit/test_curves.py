"""Precision–coverage curves agree with the auto_rate@99 metric they illustrate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cashmatch.domain.evaluation.curves import (
    coverage_at,
    curve_from_scores,
    precision_coverage_curve,
    thin,
    threshold_at,
)
from cashmatch.domain.matching import evaluate, month_batches, rules_baseline
from cashmatch.domain.matching.metrics import auto_rate_at

pytestmark = pytest.mark.unit


def test_one_row_per_distinct_confidence_highest_first():
    curve = curve_from_scores(np.array([0.5, 0.9, 0.8, 0.9]), np.array([True, True, False, True]))
    assert curve["threshold"].tolist() == [0.9, 0.8, 0.5]
    assert curve["n_auto"].tolist() == [2, 3, 4]
    assert curve["coverage"].tolist() == [0.5, 0.75, 1.0]
    assert curve["precision"].tolist() == pytest.approx([1.0, 2 / 3, 0.75])
    assert coverage_at(curve, 0.99) == 0.5
    assert threshold_at(curve, 0.99) == 0.9
    assert coverage_at(curve, 0.7) == 1.0


def test_ties_are_never_split():
    # Two transfers share the top score, one of them wrong: no cut reaches 99%.
    curve = curve_from_scores(np.array([0.9, 0.9, 0.1]), np.array([True, False, True]))
    assert curve["n_auto"].tolist() == [2, 3]
    assert coverage_at(curve) == 0.0
    assert threshold_at(curve) is None


@pytest.mark.parametrize("seed", range(20))
def test_coverage_at_equals_auto_rate_at(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    correct = rng.random(n) < rng.uniform(0.6, 1.0)
    # Rounded scores make ties common, as with calibrated model outputs.
    confidence = np.round(np.where(correct, rng.uniform(0.3, 1, n), rng.uniform(0, 0.8, n)), 2)
    curve = curve_from_scores(confidence, correct)
    for target in (0.9, 0.95, 0.99):
        assert coverage_at(curve, target) == pytest.approx(
            auto_rate_at(confidence, correct, target)
        )
    assert curve["coverage"].is_monotonic_increasing
    assert curve["coverage"].iloc[-1] == 1.0
    assert curve["precision"].iloc[-1] == pytest.approx(correct.mean())


def test_empty_input_gives_an_empty_curve():
    curve = curve_from_scores(np.zeros(0), np.zeros(0, dtype=bool))
    assert curve.empty and list(curve.columns) == [
        "threshold",
        "n_auto",
        "n_correct",
        "coverage",
        "precision",
    ]
    assert coverage_at(curve) == 0.0


def test_curve_from_predictions_matches_the_metrics():
    from cashmatch.synth import SynthConfig, generate

    data = generate(SynthConfig(months=2, start="2025-01", scale=0.1, seed=3))
    batch = month_batches(data.invoices, data.transfers, data.matches)[-1]
    predictions = rules_baseline(batch.transfers, batch.invoices)
    curve = precision_coverage_curve(predictions, batch.transfers, batch.matches)
    metrics = evaluate(predictions, batch.transfers, batch.matches)
    assert coverage_at(curve) == pytest.approx(metrics["auto_rate@99"])
    assert curve["precision"].iloc[-1] == pytest.approx(metrics["exact_set_accuracy"])
    assert curve["n_auto"].iloc[-1] == len(batch.transfers)


def test_thin_keeps_both_ends_and_the_shape():
    n = 5000
    curve = pd.DataFrame(
        {
            "threshold": np.linspace(1, 0, n),
            "n_auto": np.arange(1, n + 1),
            "n_correct": np.arange(1, n + 1),
            "coverage": np.arange(1, n + 1) / n,
            "precision": np.linspace(1, 0.5, n),
        }
    )
    small = thin(curve, max_points=200)
    assert len(small) <= 202
    assert small.iloc[0].equals(curve.iloc[0]) and small.iloc[-1].equals(curve.iloc[-1])
    assert small["coverage"].is_monotonic_increasing
    assert thin(curve.head(10)).equals(curve.head(10))
