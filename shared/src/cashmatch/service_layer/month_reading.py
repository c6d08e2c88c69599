"""One month of the warehouse through the contract's row checks: the collector's way and batch
matching's, written once so that both readers set the same rows aside."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from cashmatch.domain.contract import MATCHES
from cashmatch.domain.dataset.validation import ValidatedMonth, validate_month
from cashmatch.ports import Warehouse


def month_dates(month: str) -> tuple[dt.date, dt.date]:
    """The first day of `month` and of the month after (the end is exclusive)."""
    period = pd.Period(month, freq="M")
    return period.start_time.date(), (period + 1).start_time.date()


def read_month(
    warehouse: Warehouse,
    month: str,
    *,
    labelled: bool = True,
    transfers: pd.DataFrame | None = None,
) -> ValidatedMonth:
    """The month's transfers, open invoices and labels with the bad rows set aside by key.

    `labelled=False` reads a month whose labels are not to be used (batch matching predicts it):
    no labels, and the open invoices without this month's own settlements. `transfers`, when
    the caller already read them, are not read again.
    """
    start, end = month_dates(month)
    if transfers is None:
        transfers = warehouse.transfers(start, end)
    if labelled:
        invoices = warehouse.open_invoices(start, end)
        matches = warehouse.matches(start, end)
    else:
        invoices = warehouse.open_invoices(start, end, with_period_labels=False)
        matches = pd.DataFrame(columns=MATCHES.column_names)
    return validate_month(transfers, invoices, matches)
