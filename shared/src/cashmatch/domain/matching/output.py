"""The prediction frame shared by the model and the rules baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cashmatch.domain.matching.assembly import allocate
from cashmatch.domain.matching.prepared import Prepared
from cashmatch.domain.matching.reasons import Reasons, joined

OUTPUT_COLUMNS = [
    "transfer_id",
    "invoice_id",
    "amount",
    "confidence",
    "decision",
    "pair_score",
    "reasons",
    "why",
]
# A transfer paying nothing has no invoice to give reasons for; its row says so.
_NO_INVOICE_WHY = "No open invoice fits this transfer well enough to propose."


def allocated(p: Prepared, t: int, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The invoices `sel` transfer `t` pays, oldest first; the order taken; the allocation.

    Oldest first with credit notes netted in full, so a shortfall from a fee or a partial
    payment lands on the newest invoice of the set.
    """
    order = np.lexsort((sel, p.i_issue[sel]))
    sel = sel[order]
    return sel, order, allocate(float(p.t_amount[t]), p.i_open[sel])


def assemble_output(
    p: Prepared,
    chosen: list[np.ndarray],
    confidence: np.ndarray,
    decisions: np.ndarray,
    pair_scores: list[np.ndarray] | None,
    reasons: list[list[Reasons]] | None = None,
) -> pd.DataFrame:
    """One row per (transfer, chosen invoice); a transfer paying nothing gets one row with NA.

    Each transfer's invoices are listed and allocated as `allocated` orders them; `reasons`
    (aligned with `chosen`) fill the `reasons` (codes joined by ";") and `why` columns, empty
    without them (the rules baseline).
    """
    inv_ids, t_ids = p.i_ids, p.t_ids
    rows_t: list[str] = []
    rows_i: list[str | None] = []
    rows_a: list[float] = []
    rows_c: list[float] = []
    rows_d: list[str] = []
    rows_s: list[float] = []
    rows_r: list[str] = []
    rows_w: list[str] = []
    for t in range(len(t_ids)):
        sel = np.asarray(chosen[t], dtype=np.int64)
        if len(sel) == 0:
            rows_t.append(t_ids[t])
            rows_i.append(None)
            rows_a.append(0.0)
            rows_c.append(float(confidence[t]))
            rows_d.append(decisions[t])
            rows_s.append(0.0)
            rows_r.append("")
            rows_w.append(_NO_INVOICE_WHY if reasons is not None else "")
            continue
        scores = (
            np.asarray(pair_scores[t], dtype=np.float64)
            if pair_scores is not None
            else np.full(len(sel), float(confidence[t]))
        )
        sel, order, alloc = allocated(p, t, sel)
        scores = scores[order]
        mine = [reasons[t][j] for j in order.tolist()] if reasons is not None else None
        for j, inv_pos in enumerate(sel):
            rows_t.append(t_ids[t])
            rows_i.append(inv_ids[inv_pos])
            rows_a.append(float(alloc[j]))
            rows_c.append(float(confidence[t]))
            rows_d.append(decisions[t])
            rows_s.append(float(scores[j]))
            rows_r.append(joined(mine[j].codes) if mine is not None else "")
            rows_w.append(mine[j].why if mine is not None else "")
    return pd.DataFrame(
        {
            "transfer_id": pd.Series(rows_t, dtype=object),
            "invoice_id": pd.Series(rows_i, dtype=object),
            "amount": np.round(np.array(rows_a, dtype=np.float64), 2),
            "confidence": np.array(rows_c, dtype=np.float64),
            "decision": pd.Series(rows_d, dtype=object),
            "pair_score": np.array(rows_s, dtype=np.float64),
            "reasons": pd.Series(rows_r, dtype=object),
            "why": pd.Series(rows_w, dtype=object),
        },
        columns=OUTPUT_COLUMNS,
    )
