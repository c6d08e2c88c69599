"""The prediction frame shared by the model and the rules baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shared.matching.assembly import allocate
from shared.matching.candidates import Prepared

OUTPUT_COLUMNS = ["transfer_id", "invoice_id", "amount", "confidence", "decision", "pair_score"]


def assemble_output(
    p: Prepared,
    chosen: list[np.ndarray],
    confidence: np.ndarray,
    decisions: np.ndarray,
    pair_scores: list[np.ndarray] | None,
) -> pd.DataFrame:
    """One row per (transfer, chosen invoice); a transfer paying nothing gets one row with NA.

    Invoices are allocated oldest first (credit notes netted in full), so a shortfall from a fee
    or a partial payment lands on the newest invoice of the set.
    """
    issue, opens, inv_ids = p.i_issue, p.i_open, p.i_ids
    t_ids, amounts = p.t_ids, p.t_amount
    rows_t: list[str] = []
    rows_i: list[str | None] = []
    rows_a: list[float] = []
    rows_c: list[float] = []
    rows_d: list[str] = []
    rows_s: list[float] = []
    for t in range(len(t_ids)):
        sel = np.asarray(chosen[t], dtype=np.int64)
        if len(sel) == 0:
            rows_t.append(t_ids[t])
            rows_i.append(None)
            rows_a.append(0.0)
            rows_c.append(float(confidence[t]))
            rows_d.append(decisions[t])
            rows_s.append(0.0)
            continue
        scores = (
            np.asarray(pair_scores[t], dtype=np.float64)
            if pair_scores is not None
            else np.full(len(sel), float(confidence[t]))
        )
        order = np.lexsort((sel, issue[sel]))
        sel, scores = sel[order], scores[order]
        alloc = allocate(float(amounts[t]), opens[sel])
        for j, inv_pos in enumerate(sel):
            rows_t.append(t_ids[t])
            rows_i.append(inv_ids[inv_pos])
            rows_a.append(float(alloc[j]))
            rows_c.append(float(confidence[t]))
            rows_d.append(decisions[t])
            rows_s.append(float(scores[j]))
    return pd.DataFrame(
        {
            "transfer_id": pd.Series(rows_t, dtype=object),
            "invoice_id": pd.Series(rows_i, dtype=object),
            "amount": np.round(np.array(rows_a, dtype=np.float64), 2),
            "confidence": np.array(rows_c, dtype=np.float64),
            "decision": pd.Series(rows_d, dtype=object),
            "pair_score": np.array(rows_s, dtype=np.float64),
        },
        columns=OUTPUT_COLUMNS,
    )
