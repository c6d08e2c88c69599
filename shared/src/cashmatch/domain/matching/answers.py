"""What the model hands out per transfer: `Answer` records, the ranked candidates and the
auto/review decisions, all read straight from one settled prediction."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cashmatch.domain.matching.output import allocated
from cashmatch.domain.matching.reasons import Reasons, proposal_reasons
from cashmatch.domain.matching.settlement import Decision

CANDIDATE_COLUMNS = ["transfer_id", "invoice_id", "score", "proposed", "rank"]


def _ranking(d: Decision) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair rows t, i and their order: by transfer, then pair score (ties: lower invoice)."""
    t = d.s.pairs["t"]
    i = d.s.pairs["i"]
    return t, i, np.lexsort((i, -d.scores, t))


def decisions_at(confidence: np.ndarray, threshold: float) -> np.ndarray:
    """ "auto" where the confidence reaches the threshold, else "review"."""
    return np.where(confidence >= threshold, "auto", "review")


def ranked_candidates(d: Decision) -> pd.DataFrame:
    """Every scored pair, ranked per transfer by pair score (ties: lower invoice position)."""
    p = d.s.prepared
    t, i, order = _ranking(d)
    proposed = np.zeros(len(t), dtype=bool)
    chosen = [d.members[b] for b in d.best]
    if chosen:
        proposed[np.concatenate(chosen)] = True
    t_sorted = t[order]
    rank = np.arange(len(t)) - np.searchsorted(t_sorted, t_sorted, "left") + 1
    return pd.DataFrame(
        {
            "transfer_id": pd.Series(p.t_ids[t_sorted], dtype=object),
            "invoice_id": pd.Series(p.i_ids[i[order]], dtype=object),
            "score": d.scores[order].astype(np.float64),
            "proposed": proposed[order],
            "rank": rank.astype(np.int64),
        },
        columns=CANDIDATE_COLUMNS,
    )


@dataclass(frozen=True)
class Answer:
    """The model's answer for one transfer, as a service hands it out (`TrainedMatcher.answers`).

    `invoice_ids` and `amounts` are the proposed set and its allocation, listed as `predict`
    lists them; `candidates` is every invoice scored for the transfer, best pair score first
    (ties: earlier invoice), as (invoice_id, score, proposed): `predict_with_candidates`' rows.
    `reasons` say why each proposed invoice is in the set (aligned with `invoice_ids`).
    """

    transfer_id: str
    decision: str
    confidence: float
    invoice_ids: list[str]
    amounts: list[float]
    candidates: list[tuple[str, float, bool]]
    reasons: list[Reasons]


def chosen_reasons(d: Decision) -> list[list[Reasons]]:
    """Per transfer, the reasons of each invoice of its chosen option, in `d.members` order."""
    members = [d.members[b] for b in d.best.tolist()]
    sizes = [len(m) for m in members]
    rows = np.concatenate(members) if members else np.zeros(0, dtype=np.int64)
    options = np.repeat(d.best, sizes)
    flat = proposal_reasons(d.s.X, rows, d.opts, options)
    bounds = np.cumsum([0, *sizes]).tolist()
    return [flat[a:b] for a, b in itertools.pairwise(bounds)]


def answers_of(d: Decision, threshold: float) -> list[Answer]:
    """Every transfer's Answer, straight from the decision (no frames: one request is small)."""
    p = d.s.prepared
    t, i, order = _ranking(d)
    bounds = np.searchsorted(t[order], np.arange(len(d.best) + 1)).tolist()
    ranked_ids = p.i_ids[i[order]].tolist()
    ranked_scores = d.scores[order].astype(np.float64).tolist()
    ranked_rows = order.tolist()
    decisions = decisions_at(d.conf, threshold).tolist()
    reasons = chosen_reasons(d)
    out = []
    for k, (b, confidence) in enumerate(zip(d.best.tolist(), d.conf.tolist(), strict=True)):
        rows = d.members[b]
        chosen, taken, alloc = allocated(p, k, i[rows])
        proposed = set(rows.tolist())
        a, z = bounds[k], bounds[k + 1]
        out.append(
            Answer(
                transfer_id=str(p.t_ids[k]),
                decision=decisions[k],
                confidence=float(confidence),
                invoice_ids=[str(v) for v in p.i_ids[chosen]],
                amounts=np.round(alloc, 2).tolist(),
                reasons=[reasons[k][j] for j in taken.tolist()],
                candidates=[
                    (str(v), score, row in proposed)
                    for v, score, row in zip(
                        ranked_ids[a:z], ranked_scores[a:z], ranked_rows[a:z], strict=True
                    )
                ],
            )
        )
    return out
