"""A dataset slice: a month's (or several months') transfers, candidate invoices and labels."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

FRAMES = ("transfers", "invoices", "matches")


@dataclass
class Slice:
    """Transfers, their candidate invoices and labels; `month` column on every frame."""

    transfers: pd.DataFrame
    invoices: pd.DataFrame
    matches: pd.DataFrame

    def months(self) -> list[str]:
        """Months present, sorted."""
        return sorted(self.transfers["month"].unique().tolist())

    def for_month(self, month: str) -> Slice:
        """The rows of one month."""
        return Slice(*(getattr(self, n)[getattr(self, n)["month"] == month] for n in FRAMES))
