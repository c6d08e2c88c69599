"""Drift: found in months whose payment habits shifted, not in months that did not."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cashmatch.domain.matching import month_batches
from cashmatch.domain.monitoring import DriftConfig, compute_drift, performance_drift
from cashmatch.domain.monitoring.signals import has_reference
from cashmatch.domain.monitoring.stats import psi, two_proportion_p_value

pytestmark = pytest.mark.unit


def _batches(shift_from: str | None):
    from cashmatch.synth import SynthConfig, generate

    data = generate(
        SynthConfig(months=7, start="2025-01", scale=0.2, seed=11, shift_from=shift_from)
    )
    return {b.month: b for b in month_batches(data.invoices, data.transfers, data.matches)}


@pytest.fixture(scope="module")
def steady():
    return _batches(None)


@pytest.fixture(scope="module")
def shifted():
    return _batches("2025-05")


def _compare(batches, month, config=None):
    reference = [b for m, b in sorted(batches.items()) if m < month]
    return compute_drift(reference, batches[month], config)


def test_no_drift_in_a_month_with_the_usual_habits(steady):
    report = _compare(steady, "2025-07")
    assert not report.drifted, report.drifted_columns
    assert report.reference_months == [
        "2025-01",
        "2025-02",
        "2025-03",
        "2025-04",
        "2025-05",
        "2025-06",
    ]
    names = {c.column for c in report.columns}
    assert {"amount", "reference_rate", "no_invoice_rate", "known_payer_rate"} <= names


def test_drift_when_customers_stop_writing_references(shifted, steady):
    report = _compare(shifted, "2025-07")
    assert report.drifted
    ref = report.column("reference_rate")
    assert ref.drifted and ref.current < ref.reference - 0.1 and ref.p_value < 1e-4
    # The first shifted month against an untouched reference shows it too.
    first = _compare(shifted, "2025-05")
    assert "reference_rate" in first.drifted_columns
    # Same month, same reference length, no shift: the rate holds.
    assert not _compare(steady, "2025-05").column("reference_rate").drifted
    # The labelled pairs show it as well: fewer invoice numbers in the titles that paid them.
    pair = report.column("pair_number_in_title")
    assert pair.drifted and pair.current < pair.reference
    assert not _compare(steady, "2025-07").column("pair_number_in_title").drifted


def test_larger_invoices_move_the_amount_distribution(shifted):
    amount = _compare(shifted, "2025-06").column("amount")
    assert amount.drifted
    assert amount.current > amount.reference  # medians
    assert amount.statistic >= amount.threshold


def test_thresholds_are_configurable(shifted):
    lenient = DriftConfig(min_rate_change=0.5, psi_threshold=5.0)
    assert not _compare(shifted, "2025-07", lenient).drifted
    strict = DriftConfig(p_value=0.999, psi_threshold=0.0, min_rate_change=0.0)
    assert len(_compare(shifted, "2025-07", strict).drifted_columns) >= 3


def test_reference_window_is_capped(steady):
    report = _compare(steady, "2025-07", DriftConfig(max_reference_months=2))
    assert report.reference_months == ["2025-05", "2025-06"]


def test_reference_presence_on_known_titles(steady):
    batch = steady["2025-03"]
    flags = has_reference(batch)
    assert flags.dtype == bool and len(flags) == len(batch.transfers)
    numbers = set(batch.invoices["invoice_number"])
    exact = batch.transfers["title"].fillna("").map(lambda t: any(n in t for n in numbers))
    # Every title that quotes a number verbatim counts; reformatted ones may add to that.
    assert flags[exact.to_numpy()].all()
    assert 0.4 < flags.mean() < 0.95


def test_psi_and_proportion_test_basics():
    rng = np.random.default_rng(0)
    same = rng.normal(size=5000)
    assert psi(same, rng.normal(size=5000)) < 0.02
    assert psi(same, rng.normal(loc=1.0, size=5000)) > 0.5
    assert psi(np.ones(10), np.ones(10)) == pytest.approx(0.0)
    assert two_proportion_p_value(50, 100, 50, 100) == pytest.approx(1.0)
    assert two_proportion_p_value(70, 100, 40, 100) < 1e-4
    assert two_proportion_p_value(0, 100, 0, 50) == 1.0
    # One-sided: only a drop counts.
    assert two_proportion_p_value(40, 100, 70, 100, alternative="less") > 0.99
    assert two_proportion_p_value(70, 100, 40, 100, alternative="less") < 1e-4


def test_champion_performance_drop_is_flagged():
    test = {"auto_rate@99": 0.80, "exact_set_accuracy": 0.9}
    aged = performance_drift(test, {"auto_rate@99": 0.70}, max_drop=0.05, champion_version="m-1")
    assert aged is not None and aged.flagged and aged.drop == pytest.approx(0.10)
    fine = performance_drift(test, {"auto_rate@99": 0.78}, max_drop=0.05)
    assert fine is not None and not fine.flagged
    assert performance_drift(test, None) is None
    assert performance_drift(test, {"pair_f1": 0.5}) is None


def test_performance_drift_is_part_of_the_report(steady):
    perf = performance_drift({"auto_rate@99": 0.9}, {"auto_rate@99": 0.5}, champion_version="m-1")
    reference = [steady[m] for m in ("2025-04", "2025-05")]
    report = compute_drift(reference, steady["2025-06"], performance=perf)
    assert "champion:auto_rate@99" in report.drifted_columns
    doc = json.loads(json.dumps(report.to_dict()))
    assert doc["performance"]["champion_version"] == "m-1"
    assert doc["drifted"] is True
    assert {h["column"] for h in doc["histograms"]} == {
        "amount",
        "payment_delay_days",
        "pair_name_similarity",
        "pair_amount_share",
    }


def test_watch_only_columns_never_alarm(steady):
    # The synthetic history starts empty, so early months only see quick payments.
    early = _compare(steady, "2025-03", DriftConfig(watch_only=()))
    assert early.drifted_columns == ["payment_delay_days"]
    watched = _compare(steady, "2025-03")
    assert watched.column("payment_delay_days").drifted
    assert not watched.column("payment_delay_days").alarming
    assert not watched.drifted
