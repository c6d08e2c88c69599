"""Exact bounded subset-sum over a counterparty's open invoices, and the options built on it."""

from __future__ import annotations

import numpy as np
import pytest

from cashmatch.domain.matching.cp_sets import KIND_CP_SUM, KIND_PERIOD, counterparty_sets
from cashmatch.domain.matching.subset_sum import subset_sums

pytestmark = pytest.mark.unit


def _invoices(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(5_000, 300_000, size=n)  # 50 to 3000 PLN


def test_a_25_invoice_set_with_2_credit_notes_is_found_among_30():
    cents = _invoices(30, 1)
    cents[[4, 11]] = [-12_345, -6_789]  # credit notes
    paid = np.setdiff1d(np.arange(30), [2, 9, 17, 21, 26])  # 25 items, both credit notes in
    # many 25-sets share a sum to the cent: the pair scores (log-odds) tell them apart
    weight = np.where(np.isin(np.arange(30), paid), 0.4, -0.4)
    target = int(cents[paid].sum())
    found = subset_sums(cents, target, target, weight=weight)
    assert found.complete
    assert any(np.array_equal(s, paid) for s in found.subsets)
    assert all(int(cents[s].sum()) == int(cents[paid].sum()) for s in found.subsets)


def test_a_small_set_among_few_is_found_exactly_and_nothing_else():
    cents = np.array([1000, 2000, 4000, 8000, 16000])
    found = subset_sums(cents, 9000, 9000, keep=5)
    assert [s.tolist() for s in found.subsets] == [[0, 3]]
    assert found.complete


def test_a_window_admits_sums_within_it_closest_to_its_low_end_first():
    found = subset_sums(np.array([1000, 2000, 4000]), 3000, 5000, keep=5)
    assert [int(np.array([1000, 2000, 4000])[s].sum()) for s in found.subsets] == [3000, 4000, 5000]


def test_a_hit_bound_stops_cleanly_and_says_so():
    cents = _invoices(40, 2)
    target = int(cents[:13].sum())
    found = subset_sums(cents, target, target, max_states=500)
    assert not found.complete
    # whatever it still returns is exact
    assert all(int(cents[s].sum()) == target for s in found.subsets)


def test_60_invoices_never_blow_up_the_states_explored():
    cents = _invoices(60, 3)
    target = int(cents[::3].sum())
    found = subset_sums(cents, target, target, max_states=5_000)
    # each item extends at most max_states (+ one merge's overflow) partial sums
    assert found.states <= 60 * 2 * 5_000
    assert found.states < 2**20  # far below the 2**60 subsets


def test_an_empty_window_is_refused():
    with pytest.raises(ValueError, match="empty window"):
        subset_sums(np.array([1, 2]), 5, 4)


def _options(open_amounts, amount, gain=None):
    opens = np.asarray(open_amounts, dtype=np.float64)
    rows = np.arange(len(opens))
    g = np.zeros(len(opens)) if gain is None else np.asarray(gain, dtype=np.float64)
    return counterparty_sets(rows, opens, g, amount, 30.0, 0.05)


def test_a_period_up_to_a_date_is_an_option():
    # oldest first: the customer pays everything open up to the fifth invoice
    opens = [120.0, 80.5, 310.0, 45.25, 99.99, 410.0, 72.0]
    opts = _options(opens, sum(opens[:5]))
    assert (KIND_PERIOD, [0, 1, 2, 3, 4]) in [(k, r.tolist()) for k, r in opts]


def test_the_whole_balance_nets_a_credit_note_issued_later():
    opens = [120.0, 80.5, 310.0, 45.25, -30.0]
    opts = _options(opens, 120.0 + 80.5 + 310.0 - 30.0)  # pays 3 and nets the credit note
    assert (KIND_PERIOD, [0, 1, 2, 4]) in [(k, r.tolist()) for k, r in opts]


def test_a_period_less_one_disputed_invoice_is_found():
    opens = [120.0, 80.5, 310.0, 45.25, 99.99, 410.0]
    paid = [0, 1, 3, 4, 5]  # the third one is disputed
    opts = _options(opens, sum(opens[k] for k in paid))
    assert [0, 1, 3, 4, 5] in [r.tolist() for k, r in opts if k == KIND_CP_SUM]


def test_no_counterparty_options_when_one_invoice_can_pay():
    assert _options([100.0, 250.0, 40.0], 250.0) == []


def _codes(kind: int, fit: int, n_credit: int) -> set[str]:
    from cashmatch.domain.matching.reasons import _PAIR_COLUMNS, _code_matrix
    from cashmatch.domain.reason_codes import REASON_CODES

    x = np.zeros((1, len(_PAIR_COLUMNS)))
    row = _code_matrix(
        x, np.array([kind]), np.array([fit]), np.array([5]), np.array([n_credit]), np.zeros(1)
    )[0]
    return {c for c, on in zip(REASON_CODES, row, strict=True) if on}


def test_the_new_options_carry_their_reason_codes():
    period = _codes(KIND_PERIOD, 2, 1)
    assert {"amount:period-balance", "credit-note:netted"} <= period
    assert "amount:subset-sum" not in period
    any_subset = _codes(KIND_CP_SUM, 2, 0)
    assert "amount:subset-sum" in any_subset
    assert "amount:period-balance" not in any_subset
