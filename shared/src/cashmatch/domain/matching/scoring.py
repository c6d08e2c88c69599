"""One month, or one prediction request, turned into candidate pairs, their features and, when
labelled, the true answers (what both training and prediction score)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

import cashmatch.domain.matching.knowledge as knowledge
from cashmatch.domain.matching.candidates import candidate_columns
from cashmatch.domain.matching.config import MatcherConfig
from cashmatch.domain.matching.features import pair_features
from cashmatch.domain.matching.indexes import HabitIndex, PayerIndex
from cashmatch.domain.matching.prepared import Prepared, prepare
from cashmatch.domain.matching.tables import Columns, Table


@dataclass
class Scored:
    """One month (or one prediction request) turned into candidate pairs and features."""

    prepared: Prepared
    pairs: Columns  # t, i and the blocking flags (candidates.candidate_columns)
    X: pd.DataFrame
    y: np.ndarray | None = None
    true_sets: list[frozenset[str]] = field(default_factory=list)
    n_true_pairs: int = 0
    payer: pd.DataFrame | PayerIndex | None = None
    habits: pd.DataFrame | HabitIndex | None = None
    rows: np.ndarray | None = None  # training rows (subsample) of X


def score_input(
    transfers: Table,
    invoices: Table,
    payer: pd.DataFrame | PayerIndex | None,
    cfg: MatcherConfig,
    matches: pd.DataFrame | None = None,
    habits: pd.DataFrame | HabitIndex | None = None,
    teacher_forcing: bool = True,
    month_transfers: pd.DataFrame | None = None,
) -> Scored:
    """Candidates and pair features of the transfers against the invoices; with `matches`, the
    labels too (and, under teacher forcing, no invoices a labelled transfer closed earlier)."""
    p = prepare(transfers, invoices)
    params = cfg.blocking()
    pairs = Columns(candidate_columns(p, payer, params))
    if matches is not None and teacher_forcing:
        pairs = _drop_settled_earlier(p, pairs, matches, month_transfers)
    X = pair_features(p, pairs, payer, params, habits)
    s = Scored(p, pairs, X, payer=payer, habits=habits)
    if matches is not None:
        lab = matches[["transfer_id", "invoice_id"]].astype(str).drop_duplicates()
        t_ids, i_ids = p.t_ids, p.i_ids
        key = pd.Series(t_ids[pairs["t"]] + "|" + i_ids[pairs["i"]])
        true_keys = set(lab["transfer_id"] + "|" + lab["invoice_id"])
        s.y = key.isin(true_keys).to_numpy().astype(np.int8)
        sets = lab.groupby("transfer_id")["invoice_id"].agg(frozenset)
        empty: frozenset[str] = frozenset()
        s.true_sets = [sets.get(t, empty) for t in t_ids]
        s.n_true_pairs = int(lab["transfer_id"].isin(set(t_ids)).sum())
    return s


def _drop_settled_earlier(
    p: Prepared,
    pairs: Columns,
    matches: pd.DataFrame,
    month_transfers: pd.DataFrame | None = None,
) -> Columns:
    """Training only: drop invoices that labelled transfers booked earlier in the month settled.

    open_amount is what was open at the month start; a second payment later in the month cannot
    go to the invoice the first one closed. Prediction mirrors this by settling transfers in
    booking order (see `settle_in_order`). `month_transfers` (all of the month's transfers) is
    needed when `p` holds only a sample of them: unsampled transfers close invoices too.
    """
    settle_day = knowledge.settle_days(
        p.transfer_frame if month_transfers is None else month_transfers,
        p.invoice_frame,
        matches,
    )
    inv_settle = pd.Series(p.i_ids).map(settle_day).to_numpy(dtype=np.float64)
    pair_settle = inv_settle[pairs["i"]]
    pair_day = p.t_day[pairs["t"]]
    keep = ~(pair_settle < pair_day)  # NaN (never settled this month) compares False: kept
    return pairs.take(keep)
