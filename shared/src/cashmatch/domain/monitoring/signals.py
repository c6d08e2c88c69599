"""The signals of one month the monitor compares: per-transfer flags, payment delays, and
model-independent features of each labelled (transfer, invoice) pair."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cashmatch.domain.matching.batches import MonthBatch
from cashmatch.domain.matching.text import invoice_keys, normalize_iban, title_keys


def _reference_keys(numbers: pd.Series) -> set[str]:
    # The bare sequence number ("S:" key) is left out: a lone "42" also matches dates and amounts.
    return {k for n in numbers for k in invoice_keys(n) if not k.startswith("S:")}


def has_reference(batch: MonthBatch) -> np.ndarray:
    """Per transfer: does the title name an invoice open that month?

    Uses the matcher's normalised reference keys (the compacted number, its digits glued, its
    digit groups without leading zeros), so "FV/2025/03/0012", "fv 2025-03-12" and "2025030012"
    all count, but typos and bare sequence numbers do not: a lower bound of what clerks see.
    """
    keys = _reference_keys(batch.invoices["invoice_number"])
    return np.fromiter(
        (bool(title_keys(t) & keys) for t in batch.transfers["title"]),
        dtype=bool,
        count=len(batch.transfers),
    )


def pays_no_invoice(batch: MonthBatch) -> np.ndarray:
    """Per transfer: labelled with no invoice at all (fees, salaries, refunds...)."""
    labelled = set(batch.matches["transfer_id"].astype(str))
    return ~batch.transfers["transfer_id"].astype(str).isin(labelled).to_numpy()


def pays_several(batch: MonthBatch) -> np.ndarray:
    """Per transfer that pays invoices: does it pay two or more?"""
    counts = batch.matches.groupby("transfer_id")["invoice_id"].nunique()
    return (counts >= 2).to_numpy()


def payment_delays(batch: MonthBatch) -> np.ndarray:
    """Days from due date to booking date of every labelled (transfer, invoice) pair."""
    pairs = batch.matches[["transfer_id", "invoice_id"]].merge(
        batch.transfers[["transfer_id", "booking_date"]], on="transfer_id"
    )
    pairs = pairs.merge(batch.invoices[["invoice_id", "due_date"]], on="invoice_id")
    if pairs.empty:
        return np.zeros(0)
    delta = pd.to_datetime(pairs["booking_date"]) - pd.to_datetime(pairs["due_date"])
    return delta.dt.days.to_numpy(dtype=np.float64)


def _ibans(batch: MonthBatch) -> pd.Series:
    return batch.transfers["counterparty_iban"].map(normalize_iban)


def known_payers(batch: MonthBatch, history: Sequence[MonthBatch]) -> np.ndarray:
    """Per transfer: was its payer's account seen on a transfer of `history`? (no account: no)"""
    seen: set[str] = set()
    for month in history:
        seen.update(_ibans(month))
    seen.discard("")
    return _ibans(batch).isin(seen).to_numpy()


def pair_signals(batch: MonthBatch) -> pd.DataFrame:
    """Model-independent features of each labelled (transfer, invoice) pair: how the payer's name
    and account compare with the invoice's, whether the title carries the invoice number's digits,
    and what share of the open amount was paid. Empty for an unlabelled month."""
    from rapidfuzz import fuzz

    columns = ["name_similarity", "iban_match", "number_in_title", "amount_share"]
    if batch.matches.empty:
        return pd.DataFrame(columns=columns)
    pairs = (
        batch.matches[["transfer_id", "invoice_id", "amount"]]
        .merge(
            batch.transfers[["transfer_id", "counterparty_name", "counterparty_iban", "title"]],
            on="transfer_id",
        )
        .merge(
            batch.invoices[
                [
                    "invoice_id",
                    "invoice_number",
                    "counterparty_name",
                    "counterparty_iban",
                    "open_amount",
                ]
            ],
            on="invoice_id",
            suffixes=("_t", "_i"),
        )
    )
    if pairs.empty:
        return pd.DataFrame(columns=columns)
    names_t = pairs["counterparty_name_t"].fillna("").astype(str).str.lower()
    names_i = pairs["counterparty_name_i"].fillna("").astype(str).str.lower()
    digits_title = pairs["title"].fillna("").astype(str).str.replace(r"\D", "", regex=True)
    digits_number = pairs["invoice_number"].astype(str).str.replace(r"\D", "", regex=True)
    open_amount = pairs["open_amount"].abs().replace(0, np.nan)
    return pd.DataFrame(
        {
            "name_similarity": [
                fuzz.token_set_ratio(a, b) / 100.0 for a, b in zip(names_t, names_i, strict=True)
            ],
            "iban_match": (
                pairs["counterparty_iban_t"].notna()
                & (pairs["counterparty_iban_t"] == pairs["counterparty_iban_i"])
            ).to_numpy(),
            "number_in_title": [
                bool(n) and n in t for n, t in zip(digits_number, digits_title, strict=True)
            ],
            "amount_share": (pairs["amount"].abs() / open_amount).clip(0, 2).fillna(1.0).to_numpy(),
        }
    )
