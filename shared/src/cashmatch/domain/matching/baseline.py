"""The rules baseline the model is compared with: what a simple bank-reconciliation rule does.

Rule 1: an invoice number appears verbatim in the title and the amount equals what is open.
Rule 2: the payer account equals the invoice's account and exactly one open invoice of that account
has the transfer's amount. Anything else is left to a person (no invoice, review).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cashmatch.domain.matching.candidates import BlockingParams, iban_pairs, ref_pairs
from cashmatch.domain.matching.output import assemble_output
from cashmatch.domain.matching.prepared import prepare


def _unique_hits(hit: pd.DataFrame) -> list[tuple[int, np.ndarray]]:
    """(transfer, [invoice]) for the transfers with exactly one hit."""
    once = hit[hit.groupby("t")["t"].transform("size") == 1]
    return [(int(a), np.array([b])) for a, b in zip(once["t"], once["i"], strict=True)]


def rules_baseline(transfers: pd.DataFrame, invoices: pd.DataFrame) -> pd.DataFrame:
    """Predictions of the two rules, in the same shape as TrainedMatcher.predict."""
    p = prepare(transfers, invoices)
    tr, inv = p.transfer_frame, p.invoice_frame
    n = len(tr)
    chosen: list[np.ndarray] = [np.zeros(0, dtype=np.int64) for _ in range(n)]
    confidence = np.zeros(n)
    amounts = tr["amount"].to_numpy()
    opens = inv["open_amount"].to_numpy()

    refs = ref_pairs(p, BlockingParams())
    if len(refs):
        t = refs["t"].to_numpy(np.int64)
        i = refs["i"].to_numpy(np.int64)
        titles = tr["title"].fillna("").astype(str).str.upper().to_numpy(dtype=object)
        numbers = inv["invoice_number"].astype(str).str.upper().to_numpy(dtype=object)
        verbatim = np.fromiter(
            (numbers[b] in titles[a] for a, b in zip(t, i, strict=True)), bool, len(t)
        )
        equal = np.abs(opens[i] - amounts[t]) < 0.005
        hit = pd.DataFrame({"t": t[verbatim & equal], "i": i[verbatim & equal]})
        for grp in _unique_hits(hit):
            chosen[grp[0]] = grp[1]
            confidence[grp[0]] = 1.0

    ib = iban_pairs(p)
    if len(ib):
        t = ib["t"].to_numpy(np.int64)
        i = ib["i"].to_numpy(np.int64)
        equal = np.abs(opens[i] - amounts[t]) < 0.005
        hit = pd.DataFrame({"t": t[equal], "i": i[equal]})
        for grp in _unique_hits(hit):
            if confidence[grp[0]] == 0.0:
                chosen[grp[0]] = grp[1]
                confidence[grp[0]] = 1.0

    decisions = np.where(confidence >= 1.0, "auto", "review")
    return assemble_output(p, chosen, confidence, decisions, pair_scores=None)
