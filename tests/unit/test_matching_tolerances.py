"""Fee and discount tolerances learned per counterparty and currency (tolerances.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from cashmatch.domain.matching.batches import MonthBatch
from cashmatch.domain.matching.tolerances import (
    tolerance_observations,
    tolerance_table,
)

pytestmark = pytest.mark.unit


def _batch() -> MonthBatch:
    inv = pd.DataFrame(
        {
            "invoice_id": ["a1", "a2", "a3", "b1", "b2", "c1", "d1", "d2"],
            "counterparty_id": ["A", "A", "A", "B", "B", "C", "D", "D"],
            "currency": ["EUR", "EUR", "EUR", "EUR", "EUR", "EUR", "EUR", "PLN"],
            "open_amount": [200.0, 300.0, 100.0, 1000.0, 2000.0, 500.0, 100.0, 100.0],
        }
    )
    tr = pd.DataFrame(
        {
            "transfer_id": ["t1", "t2", "t3", "t4", "t5", "t6"],
            # t1: A's 200+300 less a 45 fee; t2: A's 100 less 40; t3: B's 1000 less 3%;
            # t4: B's 2000 less 2%; t5: half of C's 500 (a part payment); t6: two currencies.
            "amount": [455.0, 60.0, 970.0, 1960.0, 250.0, 150.0],
        }
    )
    mt = pd.DataFrame(
        {
            "transfer_id": ["t1", "t1", "t2", "t3", "t4", "t5", "t6", "t6"],
            "invoice_id": ["a1", "a2", "a3", "b1", "b2", "c1", "d1", "d2"],
            "amount": [200.0, 255.0, 60.0, 970.0, 1960.0, 250.0, 75.0, 75.0],
        }
    )
    return MonthBatch("2024-05", tr, inv, mt)


def test_short_payments_are_observed_but_part_payments_and_mixed_currencies_are_not():
    obs = tolerance_observations(_batch()).set_index("transfer_id")
    assert sorted(obs.index) == ["t1", "t2", "t3", "t4"]
    assert obs.loc["t1", "short"] == pytest.approx(45.0)
    assert obs.loc["t2", "share"] == pytest.approx(0.4)
    assert obs.loc["t3", "share"] == pytest.approx(0.03)
    assert obs.loc["t1", "counterparty_id"] == "A"


def test_learned_tolerances_widen_the_global_pair_per_counterparty():
    table = tolerance_table(tolerance_observations(_batch()), max_fee=30.0, max_discount=0.05)
    got = table.set_index(["counterparty_id", "currency"])
    assert sorted(got.index) == [("A", "EUR"), ("B", "EUR")]
    # A's banks take up to 45 (t1; t2's 40 of 100 is a fee too: 40% is no discount).
    assert got.loc[("A", "EUR"), "max_fee"] == pytest.approx(45.0)
    assert got.loc[("A", "EUR"), "max_discount"] == pytest.approx(0.05)
    # B takes at most 3%: below the global 5%, which is kept (never narrowed).
    assert got.loc[("B", "EUR"), "max_discount"] == pytest.approx(0.05)
    assert got.loc[("B", "EUR"), "max_fee"] == pytest.approx(30.0)


def test_large_short_payments_within_the_share_ceiling_widen_the_discount():
    obs = pd.DataFrame(
        {
            "transfer_id": ["x1", "x2"],
            "counterparty_id": ["E", "E"],
            "currency": ["EUR", "EUR"],
            "short": [160.0, 400.0],  # 8% of 2000, 8% of 5000: beyond any fee
            "share": [0.08, 0.08],
            "month": ["2024-05", "2024-05"],
        }
    )
    got = tolerance_table(obs, max_fee=30.0, max_discount=0.05).iloc[0]
    assert got["max_discount"] == pytest.approx(0.08)
    assert got["max_fee"] == pytest.approx(30.0)


def test_one_observation_is_not_enough():
    obs = tolerance_observations(_batch())
    table = tolerance_table(obs[obs["transfer_id"] != "t2"], max_fee=30.0, max_discount=0.05)
    assert "A" not in set(table["counterparty_id"])


def test_no_labels_no_tolerances():
    b = _batch()
    empty = MonthBatch(b.month, b.transfers, b.invoices, b.matches.iloc[:0])
    assert tolerance_observations(empty).empty
    assert tolerance_table(tolerance_observations(empty), 30.0, 0.05).empty
