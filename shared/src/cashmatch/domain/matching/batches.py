"""Month batches: the unit the matcher trains and predicts on.

A month batch holds the transfers booked in one month, the invoices open during that month with
what was still unpaid at the month start (`open_amount`), and the human labels of those transfers.
The collector builds the same thing from the warehouse; `month_batches` builds it from flat frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import pandas as pd

from cashmatch.domain.contract import INVOICES, MATCHES, TRANSFERS


def empty_matches() -> pd.DataFrame:
    """An empty labels frame with the contract columns."""
    return pd.DataFrame(
        {
            "transfer_id": pd.Series(dtype=object),
            "invoice_id": pd.Series(dtype=object),
            "amount": pd.Series(dtype="float64"),
        }
    )


@dataclass
class MonthBatch:
    """One month of (usually labelled) data: transfers, invoices open in it, and labels."""

    month: str  # "YYYY-MM"
    transfers: pd.DataFrame
    invoices: pd.DataFrame  # contract columns plus open_amount
    matches: pd.DataFrame = field(default_factory=empty_matches)

    @property
    def labelled(self) -> bool:
        """Whether this batch carries labels (at least one match)."""
        return self.matches is not None and len(self.matches) > 0

    @property
    def n_transfers(self) -> int:
        """Transfers booked in the month."""
        return len(self.transfers)

    def load(self) -> MonthBatch:
        """Itself: a batch in memory is its own `MonthSource`."""
        return self


@runtime_checkable
class MonthSource(Protocol):
    """A month the trainer can read when it needs it: what it is without reading it, and
    `load()` for the batch. Training reads each month a few times, one month at a time, so a
    source kept outside memory (a dataset slice in the blob store) bounds the trainer's memory
    by its largest month instead of its whole history."""

    @property
    def month(self) -> str: ...

    @property
    def labelled(self) -> bool: ...

    @property
    def n_transfers(self) -> int: ...

    def load(self) -> MonthBatch: ...


def month_of(dates: pd.Series) -> pd.Series:
    """The "YYYY-MM" month of each date."""
    return pd.to_datetime(dates).dt.strftime("%Y-%m")


def month_batches(
    invoices: pd.DataFrame, transfers: pd.DataFrame, matches: pd.DataFrame
) -> list[MonthBatch]:
    """Split flat contract frames into month batches, one per booking month of the transfers.

    Invoices open in a month are those issued before the month ends and not fully settled by
    transfers booked before the month starts; open_amount is the amount minus what those paid.
    """
    inv = invoices[INVOICES.column_names].copy()
    tr = transfers[TRANSFERS.column_names].copy()
    tr["booking_date"] = pd.to_datetime(tr["booking_date"])
    inv["issue_date"] = pd.to_datetime(inv["issue_date"])
    inv["due_date"] = pd.to_datetime(inv["due_date"])
    m_cols = [c for c in MATCHES.column_names if c in matches.columns]
    lab = matches[m_cols].copy()
    tr["_month"] = month_of(tr["booking_date"])
    paid = lab.merge(tr[["transfer_id", "_month"]], on="transfer_id", how="inner")
    out: list[MonthBatch] = []
    for month in sorted(tr["_month"].unique()):
        start = pd.Timestamp(f"{month}-01")
        end = start + pd.offsets.MonthBegin(1)
        before = paid[paid["_month"] < month].groupby("invoice_id")["amount"].sum()
        open_amount = (inv["amount"] - inv["invoice_id"].map(before).fillna(0.0)).round(2)
        is_open = (inv["issue_date"] < end) & (open_amount.abs() >= 0.005)
        # An overpaid positive invoice (negative remainder) is closed, not a credit note.
        is_open &= ~((inv["amount"] > 0) & (open_amount < 0))
        is_open &= ~((inv["amount"] < 0) & (open_amount > 0))
        month_inv = inv.loc[is_open].copy()
        month_inv["open_amount"] = open_amount[is_open].astype("float64")
        month_tr = tr.loc[tr["_month"] == month, TRANSFERS.column_names].reset_index(drop=True)
        ids = set(month_tr["transfer_id"])
        month_lab = lab[lab["transfer_id"].isin(ids)].reset_index(drop=True)
        out.append(MonthBatch(month, month_tr, month_inv.reset_index(drop=True), month_lab))
    return out
