"""From pair scores to one answer per transfer: options, the set model's verdict, and settling
the transfers in booking order so that no invoice is paid twice."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cashmatch.domain.matching.assembly import Members, allocate, build_options, option_matrix
from cashmatch.domain.matching.config import MatcherConfig
from cashmatch.domain.matching.estimators import Model, proba
from cashmatch.domain.matching.features import pair_features
from cashmatch.domain.matching.scoring import Scored
from cashmatch.domain.matching.subsets import fits


def options(s: Scored, scores: np.ndarray, cfg: MatcherConfig) -> tuple[pd.DataFrame, Members]:
    """Every transfer's options with their set features (`assembly.build_options`)."""
    p = s.prepared
    i = s.pairs["i"]
    columns = {
        "t": s.pairs["t"],
        "open": p.i_open[i],
        "cp": p.i_cp[i],  # counterparty codes: cheaper to group than the id strings
        "issue": p.i_issue[i],
        "ref_strong": s.X["ref_strong"].to_numpy(),
    }
    return build_options(
        columns, scores, len(p.t_amount), p.t_amount, cfg.max_fee, cfg.max_discount
    )


def option_labels(s: Scored, opts: pd.DataFrame, members: Members) -> np.ndarray:
    """1 for each option that is exactly its transfer's labelled set, else 0 (int8)."""
    inv_ids = s.prepared.i_ids
    i_pos = s.pairs["i"]
    t = opts["t"].to_numpy()
    return np.array(
        [frozenset(inv_ids[i_pos[m]]) == s.true_sets[tt] for tt, m in zip(t, members, strict=True)],
        dtype=np.int8,
    )


@dataclass
class OpenInvoices:
    """What transfers settled so far left of the invoices: the state one settlement sweep
    carries from a chunk of transfers to the next (booked later), indexed by invoice position."""

    remaining: np.ndarray  # open amount still unpaid
    closed: np.ndarray  # bool: fully paid
    closed_on: np.ndarray  # booking day of the closing transfer (int64 max while open)

    @classmethod
    def at_start(cls, open_amounts: np.ndarray) -> OpenInvoices:
        """Every invoice open with its month-start open amount."""
        n = len(open_amounts)
        return cls(
            np.array(open_amounts, dtype=np.float64),
            np.zeros(n, dtype=bool),
            np.full(n, np.iinfo(np.int64).max),
        )


def settle_in_order(
    s: Scored,
    opts: pd.DataFrame,
    probs: np.ndarray,
    members: Members,
    cfg: MatcherConfig,
    book: OpenInvoices | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The answer per transfer when transfers settle invoices one after another.

    Options are judged as if every invoice were still open at the month start; walking the
    transfers in booking order (surest first within a day), an option whose invoice an earlier
    transfer already closed is skipped for the transfer's next best one. Two payments of one
    subscriber in a month thus go to the oldest and the second oldest invoice, not both to one.
    Returns the chosen option and its probability per transfer, and per invoice the day it closed.
    `book` is what transfers booked before these (an earlier chunk) left open; it is updated.
    """
    n = len(s.prepared.transfers)
    t_opt = opts["t"].to_numpy()
    order = np.lexsort((-probs, t_opt))
    starts = np.searchsorted(t_opt[order], np.arange(n + 1))
    top = probs[order[starts[:-1]]]
    booking, amounts = s.prepared.t_day, s.prepared.t_amount
    book = book or OpenInvoices.at_start(s.prepared.i_open)
    remaining, closed, closed_on = book.remaining, book.closed, book.closed_on
    issue = s.prepared.i_issue
    i_pos = s.pairs["i"]
    best = order[starts[:-1]].copy()
    for t in np.lexsort((-top, booking)):
        for j in order[starts[t] : starts[t + 1]]:
            ip = i_pos[members[j]]
            if len(ip) and closed[ip].any():
                continue
            best[t] = j
            if len(ip):
                ip = ip[np.argsort(issue[ip], kind="stable")]
                explained = fits(
                    np.array([remaining[ip].sum()]), amounts[t], cfg.max_fee, cfg.max_discount
                )[0]
                if explained:
                    closed[ip] = True
                else:  # a part payment: the invoice stays open for the rest
                    remaining[ip] -= allocate(float(amounts[t]), remaining[ip])
                    closed[ip] |= np.abs(remaining[ip]) <= 0.005
                closed_on[ip[closed[ip]]] = np.minimum(closed_on[ip[closed[ip]]], booking[t])
            break
    return best, probs[best], closed_on


@dataclass
class Decision:
    """A settled prediction: the pairs scored, every option, and the one chosen per transfer."""

    s: Scored
    scores: np.ndarray
    opts: pd.DataFrame
    members: Members
    best: np.ndarray  # the chosen option of each transfer
    conf: np.ndarray  # its probability: the transfer's confidence


@dataclass
class Books:
    """Both settlement sweeps' open invoices, carried from chunk to chunk (see `decide`)."""

    first: OpenInvoices
    second: OpenInvoices

    @classmethod
    def at_start(cls, open_amounts: np.ndarray) -> Books:
        """Both sweeps before the month's first transfer."""
        return cls(OpenInvoices.at_start(open_amounts), OpenInvoices.at_start(open_amounts))


@dataclass
class FirstPass:
    """A chunk's pairs scored and its options judged as if every invoice were open: all that
    does not depend on earlier transfers (what parallel workers compute, see `chunked.py`)."""

    s: Scored
    scores: np.ndarray
    opts: pd.DataFrame
    members: Members
    probs: np.ndarray


def first_pass(pair_model: Model, set_model: Model, cfg: MatcherConfig, s: Scored) -> FirstPass:
    """Pair scores, options and the set model's probability of each option."""
    scores = proba(pair_model, s.X)
    opts, members = options(s, scores, cfg)
    return FirstPass(s, scores, opts, members, proba(set_model, option_matrix(opts)))


def settle(
    pair_model: Model,
    set_model: Model,
    cfg: MatcherConfig,
    f: FirstPass,
    books: Books | None = None,
) -> Decision:
    """Settle a first pass; then redo the transfers whose invoices an earlier one closed.

    The second pass drops, for each transfer, the invoices closed by transfers booked before it
    and recomputes its features, as training does with the labels (`scoring.score_input`).

    With `books`, `f` is one chunk of a month (whole booking days, after the chunks before it):
    each sweep goes on from where it left the previous chunk, and both books are updated.
    A transfer's options depend on its own candidates only, so chunk by chunk gives what one
    call on the whole month gives (`chunked.py`).
    """
    s, scores, opts, members, probs = f.s, f.scores, f.opts, f.members, f.probs
    books = books or Books.at_start(s.prepared.i_open)
    _, _, closed_on = settle_in_order(s, opts, probs, members, cfg, books.first)
    t = s.pairs["t"]
    drop = closed_on[s.pairs["i"]] < s.prepared.t_day[t]
    if not drop.any():
        # The second sweep still walks these transfers: its book may differ from the first's.
        best2, conf2, _ = settle_in_order(s, opts, probs, members, cfg, books.second)
        return Decision(s, scores, opts, members, best2, conf2)
    keep = ~drop
    redo = np.isin(t, np.unique(t[drop]))[keep]
    pairs = s.pairs.take(keep)
    X = s.X[keep].reset_index(drop=True)
    X_redo = pair_features(s.prepared, pairs.take(redo), s.payer, cfg.blocking(), s.habits)
    X.loc[redo, :] = X_redo.to_numpy()
    s2 = Scored(
        s.prepared,
        pairs,
        X,
        y=None if s.y is None else s.y[keep],
        true_sets=s.true_sets,
        n_true_pairs=s.n_true_pairs,
        payer=s.payer,
        habits=s.habits,
    )
    scores2 = scores[keep]
    scores2[redo] = proba(pair_model, X_redo)
    opts2, members2 = options(s2, scores2, cfg)
    probs2 = proba(set_model, option_matrix(opts2))
    best2, conf2, _ = settle_in_order(s2, opts2, probs2, members2, cfg, books.second)
    return Decision(s2, scores2, opts2, members2, best2, conf2)


def decide(
    pair_model: Model,
    set_model: Model,
    cfg: MatcherConfig,
    s: Scored,
    books: Books | None = None,
) -> Decision:
    """Score, assemble and settle (`first_pass`, then `settle`)."""
    return settle(pair_model, set_model, cfg, first_pass(pair_model, set_model, cfg, s), books)
