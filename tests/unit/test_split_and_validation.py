import pandas as pd
import pytest

from cashmatch.domain.dataset.split import is_test_transfer, months_between
from cashmatch.domain.dataset.validation import validate_month

pytestmark = pytest.mark.unit


def test_split_is_deterministic_and_near_the_fraction():
    ids = pd.Series([f"T{i}" for i in range(5000)])
    first = is_test_transfer(ids, 0.2, seed=1)
    assert (first == is_test_transfer(ids, 0.2, seed=1)).all()
    assert 0.17 < first.mean() < 0.23
    # Membership depends on the id alone, not on what else is in the batch.
    assert (is_test_transfer(ids[:100], 0.2, seed=1) == first[:100]).all()
    assert (is_test_transfer(ids, 0.2, seed=2) != first).any()


def test_months_between():
    assert months_between("2024-11", "2025-02") == ["2024-11", "2024-12", "2025-01", "2025-02"]


def _frames():
    day = pd.Timestamp("2025-03-05")
    transfers = pd.DataFrame(
        {
            "transfer_id": ["T1", "T2", "T3", "T4", "T4"],
            "booking_date": [day] * 5,
            "direction": ["incoming", "incoming", "sideways", "incoming", "incoming"],
            "amount": [100.0, -5.0, 10.0, 1.0, 1.0],
            "currency": ["PLN", "PLN", "PLN", "PLN", "PLN"],
            "counterparty_name": [None] * 5,
            "counterparty_iban": [None] * 5,
            "title": [None] * 5,
        }
    )
    invoices = pd.DataFrame(
        {
            "invoice_id": ["I1", "I2", "I3"],
            "invoice_number": ["FV/1", "FV/2", "FV/3"],
            "direction": ["receivable", "payable", "receivable"],
            "counterparty_id": ["C1", "C2", "C3"],
            "counterparty_name": ["A", "B", "C"],
            "counterparty_tax_id": [None] * 3,
            "counterparty_iban": [None] * 3,
            "currency": ["PLN", "PLN", "eur"],
            "amount": [100.0, 50.0, 10.0],
            "issue_date": [day] * 3,
            "due_date": [day] * 3,
            "open_amount": [100.0, 50.0, 10.0],
        }
    )
    matches = pd.DataFrame(
        {
            "transfer_id": ["T1", "T5"],
            "invoice_id": ["I1", "I1"],
            "amount": [100.0, 3.0],
            "matched_at": [day, day],
        }
    )
    return transfers, invoices, matches


def test_bad_rows_are_quarantined_by_key_with_reasons():
    checked = validate_month(*_frames())
    assert checked.transfers["transfer_id"].tolist() == ["T1"]
    q = checked.quarantine
    reasons = {(t, k): r for t, k, r in q.itertuples(index=False)}
    assert "amount must be > 0" in reasons[("transfers", "T2")]
    assert "direction not incoming/outgoing" in reasons[("transfers", "T3")]
    assert "duplicate transfer_id" in reasons[("transfers", "T4")]
    assert "currency not ISO 4217" in reasons[("invoices", "I3")]
    assert "unknown transfer" in reasons[("matches", "T5/I1")]
    assert checked.matches["transfer_id"].tolist() == ["T1"]


def test_a_transfer_with_a_bad_label_is_set_aside_whole():
    transfers, invoices, matches = _frames()
    matches = pd.concat(
        [
            matches,
            pd.DataFrame(
                {
                    "transfer_id": ["T1"],
                    "invoice_id": ["I2"],
                    "amount": [1.0],
                    "matched_at": [pd.Timestamp("2025-03-06")],
                }
            ),
        ],
        ignore_index=True,
    )
    checked = validate_month(transfers, invoices, matches)
    assert "T1" not in set(checked.transfers["transfer_id"])
    q = checked.quarantine
    assert ((q["key"] == "T1/I2") & q["reason"].str.contains("directions do not pair")).any()
    assert ((q["key"] == "T1") & q["reason"].str.contains("a label of it is invalid")).any()
    # nothing vanishes silently: every transfer is either kept or named in the quarantine
    named = set(q.loc[q["table"] == "transfers", "key"])
    assert set(transfers["transfer_id"]) == named | set(checked.transfers["transfer_id"])
