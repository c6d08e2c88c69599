"""The trained matcher: pair model, set model, learned payer knowledge and the auto threshold.

Training (`train_matcher`) works month by month, as the data arrives:

1. Candidates and pair features of each month use only the payer knowledge of the months before
   it, exactly as prediction will (no peeking at a month's own labels). A month larger than
   `max_fit_transfers_per_month` is scored and fitted on a stable sample of its transfers; the
   knowledge still comes from all of its labels.
2. The pair model is cross-fitted over blocks of months, so every training month gets pair scores
   from a model that did not see it; the set model learns from answers built on those honest
   scores.
3. The last `calibration_months` months are held out from the set model once more: the confidence
   threshold that keeps auto-settled answers at least `target_precision` exactly right is chosen
   there, on data neither model saw.
4. Both models are refitted on everything and keep that threshold.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TypeAlias

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import ThreadpoolController, threadpool_limits

from cashmatch.domain.matching import knowledge
from cashmatch.domain.matching.assembly import (
    SET_FEATURES,
    Members,
    allocate,
    build_options,
    option_matrix,
)
from cashmatch.domain.matching.batches import MonthBatch
from cashmatch.domain.matching.candidates import BlockingParams, candidate_columns
from cashmatch.domain.matching.features import FEATURES, pair_features
from cashmatch.domain.matching.forest import Forest, flattened
from cashmatch.domain.matching.indexes import HabitIndex, PayerIndex
from cashmatch.domain.matching.metrics import auto_rate_at
from cashmatch.domain.matching.output import allocated, assemble_output
from cashmatch.domain.matching.prepared import Prepared, prepare
from cashmatch.domain.matching.subsets import fits
from cashmatch.domain.matching.tables import Columns, Table, as_frame, with_open_amount

NO_AUTO_THRESHOLD = 1.01  # above every probability: nothing is settled automatically


@dataclass
class MatcherConfig:
    """Hyper-parameters of the matcher; the defaults are meant to be sensible for real data."""

    target_precision: float = 0.99  # share of auto-settled answers that must be exactly right
    seed: int = 0
    # Largest bank fee (currency units) and early-payment discount (fraction) a payer may take off.
    max_fee: float = 30.0
    max_discount: float = 0.05
    # Blocking caps: keys, amounts or name tokens shared by more invoices than this say too little.
    max_key_invoices: int = 40
    max_amount_invoices: int = 25
    max_name_token_cps: int = 5
    max_candidates: int = 60
    # Share of obviously wrong candidate pairs the pair model learns from (not weighted back up).
    easy_negative_rate: float = 0.1
    # Extra precision demanded on the calibration months, against their sampling noise.
    threshold_margin: float = 0.002
    # Never settle an answer the model itself rates below this, however well the calibration
    # months went: a drifting month hits the least sure answers first.
    min_threshold: float = 0.5
    calibration_months: int = 2
    n_folds: int = 2
    pair_max_iter: int = 100
    pair_learning_rate: float = 0.12
    pair_max_leaf_nodes: int = 31
    set_max_iter: int = 150
    set_learning_rate: float = 0.05
    set_max_leaf_nodes: int = 15
    # Threads for the estimators. One by default: a shared or busy machine makes OpenMP's
    # threads wait on each other, which costs far more than the parallelism gains.
    n_threads: int = 1
    # Payer observations kept in the model (the newest), so the model file stays bounded.
    max_observations: int = 500_000
    # Transfers of one month the models are fitted on: a stable sample (by transfer id) of a
    # larger month. Payer knowledge and habits still learn from every label and the calibration
    # months are judged in full; only the fitting cost stops growing with the month's size.
    max_fit_transfers_per_month: int = 10_000

    def blocking(self) -> BlockingParams:
        """The blocking caps as the candidate generator takes them."""
        return BlockingParams(
            max_fee=self.max_fee,
            max_discount=self.max_discount,
            max_key_invoices=self.max_key_invoices,
            max_amount_invoices=self.max_amount_invoices,
            max_name_token_cps=self.max_name_token_cps,
            max_candidates=self.max_candidates,
        )

    def to_dict(self) -> dict:
        """Plain JSON-able dict of the configuration."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MatcherConfig:
        """Configuration from a dict; unknown keys are an error."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown MatcherConfig fields: {sorted(unknown)}")
        return cls(**data)


@dataclass
class _Scored:
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


def _score_input(
    transfers: Table,
    invoices: Table,
    payer: pd.DataFrame | PayerIndex | None,
    cfg: MatcherConfig,
    matches: pd.DataFrame | None = None,
    habits: pd.DataFrame | HabitIndex | None = None,
    teacher_forcing: bool = True,
    month_transfers: pd.DataFrame | None = None,
) -> _Scored:
    p = prepare(transfers, invoices)
    params = cfg.blocking()
    pairs = Columns(candidate_columns(p, payer, params))
    if matches is not None and teacher_forcing:
        pairs = _drop_settled_earlier(p, pairs, matches, month_transfers)
    X = pair_features(p, pairs, payer, params, habits)
    s = _Scored(p, pairs, X, payer=payer, habits=habits)
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
    booking order (see `_settle_in_order`). `month_transfers` (all of the month's transfers) is
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


# Features whose effect has an obvious direction get a monotonic constraint: more reference
# similarity, an equal amount or a known payer never make a pair less likely, and a likelier
# option or a better left-out candidate move the set's probability the expected way. This keeps
# the models sane on data unlike the training data, at little cost in fit.
PAIR_MONOTONIC = {
    "ref_C": 1,
    "ref_D": 1,
    "ref_Z": 1,
    "ref_strong": 1,
    "ref_partial": 1,
    "ref_digits_partial": 1,
    "strong_ref_unique": 1,
    "tax_in_title": 1,
    "iban_eq": 1,
    "name_sim": 1,
    "payer_iban_share": 1,
    "payer_name_share": 1,
    "payer_title_share": 1,
    "eq_open": 1,
    "eq_amount": 1,
    "in_exact_subset": 1,
}
SET_MONOTONIC = {
    "p_min": 1,
    "p_mean": 1,
    "p_max": 1,
    "p_out_max": -1,
    "ll": 1,
    "ll_margin": 1,
    "top1_in": 1,
    "n_ref_out": -1,
}


def _monotonic(names: list[str], signs: dict[str, int]) -> list[int]:
    return [signs.get(n, 0) for n in names]


def _pair_model(cfg: MatcherConfig) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        monotonic_cst=_monotonic(FEATURES, PAIR_MONOTONIC),
        max_iter=cfg.pair_max_iter,
        learning_rate=cfg.pair_learning_rate,
        max_leaf_nodes=cfg.pair_max_leaf_nodes,
        min_samples_leaf=20,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=cfg.seed,
    )


def _set_model(cfg: MatcherConfig) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        monotonic_cst=_monotonic(SET_FEATURES, SET_MONOTONIC),
        max_iter=cfg.set_max_iter,
        learning_rate=cfg.set_learning_rate,
        max_leaf_nodes=cfg.set_max_leaf_nodes,
        min_samples_leaf=20,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=cfg.seed,
    )


def _fit(
    model: HistGradientBoostingClassifier,
    X: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray | None = None,
):
    if len(np.unique(y)) < 2:
        raise ValueError(
            "training data holds only one class (no matched or no unmatched candidates); "
            "train on more labelled months"
        )
    return model.fit(X, y, sample_weight=weight)


def _training_rows(s: _Scored, rate: float, rng: np.random.Generator) -> None:
    """Keep every positive and every hard negative pair, and a sample of the easy ones.

    Most candidate pairs are obviously wrong (no reference, an unrelated amount); learning from a
    tenth of them gives nearly the same ranking in a fraction of the time. The sample is not
    weighted back up (weighted binning is slow): easy pairs get somewhat higher scores, the
    same way in the cross-fitted scores the set model learns from and in prediction.
    """
    X = s.X
    hard = (
        (X["ref_strong"].to_numpy() > 0)
        | (X["ref_partial"].to_numpy() >= 0.9)
        | (X["eq_open"].to_numpy() > 0)
        | (X["in_tol_subset"].to_numpy() > 0)
        | (np.abs(X["rel_diff"].to_numpy()) <= 0.05)
    )
    easy = (s.y == 0) & ~hard
    keep = ~easy | (rng.random(len(X)) < rate)
    s.rows = np.flatnonzero(keep)


def _fit_sample(transfers: pd.DataFrame, cap: int) -> pd.DataFrame:
    """At most `cap` transfers (0: all): those whose id hashes lowest, so a month's sample is the
    same however often and in whatever row order the month is trained on."""
    if cap <= 0 or len(transfers) <= cap:
        return transfers
    h = pd.util.hash_pandas_object(transfers["transfer_id"].astype(str), index=False).to_numpy()
    keep = np.sort(np.argpartition(h, cap - 1)[:cap])
    return transfers.iloc[keep].reset_index(drop=True)


def _fit_rows(s: _Scored) -> tuple[np.ndarray, np.ndarray]:
    """The pair model's training rows of a month (see `_training_rows`) as float32."""
    rows = _rows(s)
    return s.X.iloc[rows].to_numpy(np.float32), _labels(s)[rows]


def _stack(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([X for X, _ in parts]), np.concatenate([y for _, y in parts])


def _slim(s: _Scored) -> _Scored:
    """A scored training month without what option building does not read (normalised texts,
    knowledge tables): twelve large months must fit in memory at once."""
    tr, inv = s.prepared.transfer_frame, s.prepared.invoice_frame
    s.prepared = Prepared(
        tr[["transfer_id", "amount", "booking_date"]],
        inv[["invoice_id", "amount", "open_amount", "counterparty_id", "issue_date"]],
    )
    if (s.X.dtypes != np.float32).any():
        s.X = s.X.astype(np.float32)
    s.payer = s.habits = None
    return s


class _Stopwatch:
    """Seconds per training stage, reported as `seconds_<stage>` training metrics."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.spent[stage] = self.spent.get(stage, 0.0) + time.perf_counter() - t0

    def metrics(self) -> dict[str, float]:
        return {f"seconds_{k}": v for k, v in self.spent.items()}


def _rows(s: _Scored) -> np.ndarray:
    return s.rows if s.rows is not None else np.arange(len(s.X))


def _labels(s: _Scored) -> np.ndarray:
    if s.y is None:
        raise ValueError("training needs labelled months")
    return s.y


# A fitted estimator, or its Forest (the same probabilities, faster on small inputs).
_Model: TypeAlias = HistGradientBoostingClassifier | Forest


def _proba(model: _Model, X: pd.DataFrame | np.ndarray) -> np.ndarray:
    if len(X) == 0:
        return np.zeros(0)
    if isinstance(model, Forest):
        return model.positive_proba(np.asarray(X, dtype=np.float32))
    return model.predict_proba(np.asarray(X, dtype=np.float32))[:, 1]


def _options(s: _Scored, scores: np.ndarray, cfg: MatcherConfig):
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


def _option_labels(s: _Scored, opts: pd.DataFrame, members: Members) -> np.ndarray:
    inv_ids = s.prepared.i_ids
    i_pos = s.pairs["i"]
    t = opts["t"].to_numpy()
    return np.array(
        [frozenset(inv_ids[i_pos[m]]) == s.true_sets[tt] for tt, m in zip(t, members, strict=True)],
        dtype=np.int8,
    )


def _choose(
    opts: pd.DataFrame, probs: np.ndarray, n_transfers: int
) -> tuple[np.ndarray, np.ndarray]:
    """Index of the most probable option per transfer and its probability."""
    order = np.lexsort((-probs, opts["t"].to_numpy()))
    t_sorted = opts["t"].to_numpy()[order]
    first = np.searchsorted(t_sorted, np.arange(n_transfers))
    best = order[first]
    return best, probs[best]


def _settle_in_order(
    s: _Scored, opts: pd.DataFrame, probs: np.ndarray, members: Members, cfg: MatcherConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The answer per transfer when transfers settle invoices one after another.

    Options are judged as if every invoice were still open at the month start; walking the
    transfers in booking order (surest first within a day), an option whose invoice an earlier
    transfer already closed is skipped for the transfer's next best one. Two payments of one
    subscriber in a month thus go to the oldest and the second oldest invoice, not both to one.
    Returns the chosen option and its probability per transfer, and per invoice the day it closed.
    """
    n = len(s.prepared.transfers)
    t_opt = opts["t"].to_numpy()
    order = np.lexsort((-probs, t_opt))
    starts = np.searchsorted(t_opt[order], np.arange(n + 1))
    top = probs[order[starts[:-1]]]
    booking, amounts = s.prepared.t_day, s.prepared.t_amount
    remaining = s.prepared.i_open.copy()
    issue = s.prepared.i_issue
    closed = np.zeros(len(issue), dtype=bool)
    closed_on = np.full(len(issue), np.iinfo(np.int64).max)
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
class _Decision:
    s: _Scored
    scores: np.ndarray
    opts: pd.DataFrame
    members: Members
    best: np.ndarray
    conf: np.ndarray


def _decide(
    pair_model: _Model,
    set_model: _Model,
    cfg: MatcherConfig,
    s: _Scored,
) -> _Decision:
    """Score, assemble and settle; then redo the transfers whose invoices an earlier one closed.

    The second pass drops, for each transfer, the invoices closed by transfers booked before it
    and recomputes its features, as training does with the labels (`_drop_settled_earlier`).
    """
    scores = _proba(pair_model, s.X)
    opts, members = _options(s, scores, cfg)
    probs = _proba(set_model, option_matrix(opts))
    best, conf, closed_on = _settle_in_order(s, opts, probs, members, cfg)
    t = s.pairs["t"]
    drop = closed_on[s.pairs["i"]] < s.prepared.t_day[t]
    if not drop.any():
        return _Decision(s, scores, opts, members, best, conf)
    keep = ~drop
    redo = np.isin(t, np.unique(t[drop]))[keep]
    pairs = s.pairs.take(keep)
    X = s.X[keep].reset_index(drop=True)
    X_redo = pair_features(s.prepared, pairs.take(redo), s.payer, cfg.blocking(), s.habits)
    X.loc[redo, :] = X_redo.to_numpy()
    s2 = _Scored(
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
    scores2[redo] = _proba(pair_model, X_redo)
    opts2, members2 = _options(s2, scores2, cfg)
    probs2 = _proba(set_model, option_matrix(opts2))
    best2, conf2, _ = _settle_in_order(s2, opts2, probs2, members2, cfg)
    return _Decision(s2, scores2, opts2, members2, best2, conf2)


def choose_threshold(confidence: np.ndarray, correct: np.ndarray, target: float) -> float:
    """Lowest confidence cut whose auto-settled share is at least `target` exactly right.

    Among all valid cuts the one settling the most is taken; none valid means no auto at all.
    """
    n = len(confidence)
    if n == 0:
        return NO_AUTO_THRESHOLD
    order = np.argsort(-confidence, kind="stable")
    conf = confidence[order]
    ok = correct[order].astype(np.float64)
    prec = np.cumsum(ok) / np.arange(1, n + 1)
    ends = np.append(conf[1:] != conf[:-1], True)
    valid = np.flatnonzero(ends & (prec >= target - 1e-12))
    if len(valid) == 0:
        return NO_AUTO_THRESHOLD
    return float(conf[valid.max()])


@functools.cache
def _thread_controller() -> ThreadpoolController:
    return ThreadpoolController()


def _predict_threads(cfg: MatcherConfig):
    """The thread cap of `_threads` through one controller per process.

    `threadpool_limits()` inspects every loaded library on each call (about 5 ms, more than the
    rest of a one-transfer prediction); the libraries do not change once sklearn is imported.
    """
    if cfg.n_threads <= 0:
        return contextlib.nullcontext()
    return _thread_controller().limit(limits=cfg.n_threads)


CANDIDATE_COLUMNS = ["transfer_id", "invoice_id", "score", "proposed", "rank"]


def _stacked(tables: list[Table]) -> Table:
    """The rows of several requests' tables, one after another."""
    if all(isinstance(table, Columns) for table in tables):
        return Columns.concat(tables)  # type: ignore[arg-type]
    return pd.concat([as_frame(table) for table in tables], ignore_index=True)


def _ranking(d: _Decision) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair rows t, i and their order: by transfer, then pair score (ties: lower invoice)."""
    t = d.s.pairs["t"]
    i = d.s.pairs["i"]
    return t, i, np.lexsort((i, -d.scores, t))


def _decisions(confidence: np.ndarray, threshold: float) -> np.ndarray:
    return np.where(confidence >= threshold, "auto", "review")


def _ranked_candidates(d: _Decision) -> pd.DataFrame:
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
    """

    transfer_id: str
    decision: str
    confidence: float
    invoice_ids: list[str]
    amounts: list[float]
    candidates: list[tuple[str, float, bool]]


def _answers(d: _Decision, threshold: float) -> list[Answer]:
    """Every transfer's Answer, straight from the decision (no frames: one request is small)."""
    p = d.s.prepared
    t, i, order = _ranking(d)
    bounds = np.searchsorted(t[order], np.arange(len(d.best) + 1)).tolist()
    ranked_ids = p.i_ids[i[order]].tolist()
    ranked_scores = d.scores[order].astype(np.float64).tolist()
    ranked_rows = order.tolist()
    decisions = _decisions(d.conf, threshold).tolist()
    out = []
    for k, (b, confidence) in enumerate(zip(d.best.tolist(), d.conf.tolist(), strict=True)):
        rows = d.members[b]
        chosen, _, alloc = allocated(p, k, i[rows])
        proposed = set(rows.tolist())
        a, z = bounds[k], bounds[k + 1]
        out.append(
            Answer(
                transfer_id=str(p.t_ids[k]),
                decision=decisions[k],
                confidence=float(confidence),
                invoice_ids=[str(v) for v in p.i_ids[chosen]],
                amounts=np.round(alloc, 2).tolist(),
                candidates=[
                    (str(v), score, row in proposed)
                    for v, score, row in zip(
                        ranked_ids[a:z], ranked_scores[a:z], ranked_rows[a:z], strict=True
                    )
                ],
            )
        )
    return out


class TrainedMatcher:
    """A trained matcher: predicts invoice sets, allocations, confidences and decisions."""

    def __init__(
        self,
        config: MatcherConfig,
        pair_model: HistGradientBoostingClassifier,
        set_model: HistGradientBoostingClassifier,
        threshold: float,
        observations: pd.DataFrame,
        training_metrics: dict[str, float],
        habits: pd.DataFrame | None = None,
    ) -> None:
        self.config = config
        self.pair_model = pair_model
        self.set_model = set_model
        self.threshold = float(threshold)
        self.observations = observations
        self.training_metrics = dict(training_metrics)
        self.habits = habits if habits is not None else knowledge.empty_habits()
        # Lookups of the model's own knowledge, built on first use (not part of the model file).
        self._own_knowledge: tuple[pd.DataFrame, pd.DataFrame, PayerIndex, HabitIndex] | None = None
        self._own_forests: tuple[object, object, _Model, _Model] | None = None

    def predict(
        self,
        transfers: pd.DataFrame,
        invoices: pd.DataFrame,
        history: list[MonthBatch] | None = None,
    ) -> pd.DataFrame:
        """One row per predicted (transfer, invoice) pair; a transfer paying nothing: one NA row.

        `history` adds labelled months (before these transfers) to what the model already knows
        about which payer pays for which counterparty.
        """
        return self._output(self._run(transfers, invoices, history))

    def predict_with_candidates(
        self,
        transfers: pd.DataFrame,
        invoices: pd.DataFrame,
        history: list[MonthBatch] | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """`predict`'s frame, and every candidate the model scored, from one prediction.

        The second frame has one row per scored (transfer, invoice) pair: `transfer_id`,
        `invoice_id`, `score` (the pair model's, as `pair_score`), `proposed` (in the predicted
        set) and `rank` (1 = best score of its transfer), ordered by transfer, then rank.
        Invoices blocking never paired with a transfer are not listed, nor those a transfer
        booked earlier in the same call already closed.
        """
        d = self._run(transfers, invoices, history)
        return self._output(d), _ranked_candidates(d)

    def answers(self, transfers: Table, invoices: Table) -> list[Answer]:
        """One `Answer` per transfer, in the order of `transfers`: what a service hands out.

        The same prediction as `predict_with_candidates`, without building its frames.
        """
        return _answers(self._run(transfers, invoices, None), self.threshold)

    def answers_many(self, requests: Sequence[tuple[Table, Table]]) -> list[list[Answer]]:
        """`answers` for independent requests (transfers, their open invoices) in one prediction.

        Each request is blocked against its own invoices only; features, both models and
        settlement then run once for all of them, which is what makes many small requests
        cheap. Every answer equals that of its request alone: a transfer's features depend on
        its own candidates only, and no request's invoices are candidates of another's.
        """
        if not requests:
            return []
        payer, habits = self._knowledge(None)
        params = self.config.blocking()
        with _predict_threads(self.config):
            # Pair positions of each request move by the rows of the requests before it.
            parts, t0, i0 = [], 0, 0
            for transfers, invoices in requests:
                found = candidate_columns(prepare(transfers, invoices), payer, params)
                parts.append(Columns({**found, "t": found["t"] + t0, "i": found["i"] + i0}))
                t0, i0 = t0 + len(transfers), i0 + len(invoices)
            pairs = Columns.concat(parts)
            p = prepare(
                _stacked([t for t, _ in requests]),
                # each request's own: one without open amounts must not get NaN ones when stacked
                _stacked([with_open_amount(i) for _, i in requests]),
            )
            X = pair_features(p, pairs, payer, params, habits)
            s = _Scored(p, pairs, X, payer=payer, habits=habits)
            d = _decide(*self._forests(), self.config, s)
        answers = _answers(d, self.threshold)
        bounds = np.cumsum([0, *(len(t) for t, _ in requests)])
        return [answers[a:b] for a, b in itertools.pairwise(bounds)]

    def _knowledge(self, history: list[MonthBatch] | None) -> tuple[PayerIndex, HabitIndex]:
        """Payer and habit lookups: the model's own ones are built once, not per request."""
        if history:
            return _knowledge_indexes(
                [self.observations, *map(knowledge.observations, history)],
                [self.habits, *map(knowledge.habit_observations, history)],
            )
        own = self._own_knowledge
        if own is None or own[0] is not self.observations or own[1] is not self.habits:
            indexes = _knowledge_indexes([self.observations], [self.habits])
            own = (self.observations, self.habits, *indexes)
            self._own_knowledge = own  # one assignment: concurrent requests see all or nothing
        return own[2], own[3]

    def _forests(self) -> tuple[_Model, _Model]:
        """Both models flattened for small inputs (see shared/matching/forest.py), built once."""
        own = self._own_forests
        if own is None or own[0] is not self.pair_model or own[1] is not self.set_model:
            pair, set_ = self.pair_model, self.set_model
            own = (pair, set_, flattened(pair), flattened(set_))
            self._own_forests = own  # one assignment: concurrent requests see all or nothing
        return own[2], own[3]

    def _run(
        self, transfers: Table, invoices: Table, history: list[MonthBatch] | None
    ) -> _Decision:
        payer, habits = self._knowledge(history)
        with _predict_threads(self.config):
            s = _score_input(transfers, invoices, payer, self.config, habits=habits)
            return _decide(*self._forests(), self.config, s)

    def _output(self, d: _Decision) -> pd.DataFrame:
        i_pos = d.s.pairs["i"]
        chosen = [i_pos[d.members[b]] for b in d.best]
        pair_scores = [d.scores[d.members[b]] for b in d.best]
        decisions = _decisions(d.conf, self.threshold)
        return assemble_output(d.s.prepared, chosen, d.conf, decisions, pair_scores)

    def to_bytes(self) -> bytes:
        """The model as a zip of skops estimators, JSON metadata and parquet data; no pickle."""
        from cashmatch.domain.matching.serialize import dump_matcher

        return dump_matcher(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainedMatcher:
        """Load a model written by to_bytes; ValueError on anything unexpected or tampered."""
        from cashmatch.domain.matching.serialize import load_matcher

        return load_matcher(data)


def _knowledge_indexes(
    observations: list[pd.DataFrame], habits: list[pd.DataFrame]
) -> tuple[PayerIndex, HabitIndex]:
    """Payer and habit lookups from observation and habit tables (the model's, and history's)."""
    return (
        PayerIndex.of(knowledge.payer_map(knowledge.combine(observations))),
        HabitIndex.of(knowledge.habit_table(knowledge.combine_habits(habits))),
    )


def train_matcher(months: list[MonthBatch], config: MatcherConfig | None = None) -> TrainedMatcher:
    """Train on labelled months (any order; they are sorted here). Unlabelled months are skipped."""
    cfg = config or MatcherConfig()
    with _threads(cfg):
        return _train(months, cfg)


def _threads(cfg: MatcherConfig):
    # threadpoolctl ships with scikit-learn; it caps the OpenMP threads of the estimators.
    return threadpool_limits(cfg.n_threads) if cfg.n_threads > 0 else contextlib.nullcontext()


def _train(months: list[MonthBatch], cfg: MatcherConfig) -> TrainedMatcher:
    started = time.perf_counter()
    clock = _Stopwatch()
    batches = sorted((b for b in months if b.labelled), key=lambda b: b.month)
    if not batches:
        raise ValueError("train_matcher needs at least one labelled month")
    n = len(batches)
    n_cal = min(cfg.calibration_months, n - 1) if n >= 2 else 0
    with clock("knowledge"):
        obs = [knowledge.observations(b) for b in batches]
        habit_obs = [knowledge.habit_observations(b) for b in batches]

    # Score month by month, keeping only what fitting needs: the pair model's rows and, for the
    # out-of-fold scores the set model learns from, the sampled transfers' features as float32.
    rng = np.random.default_rng(cfg.seed)
    data: list[_Scored] = []
    fit_rows: list[tuple[np.ndarray, np.ndarray]] = []
    known: dict[int, tuple[pd.DataFrame, pd.DataFrame]] = {}  # calibration months' knowledge
    for k, b in enumerate(batches):
        with clock("knowledge"):
            payer = knowledge.payer_map(knowledge.combine(obs[:k]))
            habits = knowledge.habit_table(knowledge.combine_habits(habit_obs[:k]))
        with clock("scoring"):
            s = _score_input(
                _fit_sample(b.transfers, cfg.max_fit_transfers_per_month),
                b.invoices,
                payer,
                cfg,
                b.matches,
                habits,
                month_transfers=b.transfers,
            )
            _training_rows(s, cfg.easy_negative_rate, rng)
            fit_rows.append(_fit_rows(s))
            data.append(_slim(s))
        if k >= n - n_cal:
            known[k] = (payer, habits)
    n_true = sum(s.n_true_pairs for s in data)
    n_found = sum(int(_labels(s).sum()) for s in data)
    n_pairs = sum(len(s.pairs) for s in data)

    n_folds = max(1, min(cfg.n_folds, n))
    fold_of = [k * n_folds // n for k in range(n)]
    fold_models = []
    with clock("pair_fits"):
        for f in range(n_folds):
            train_idx = [k for k in range(n) if fold_of[k] != f] or list(range(n))
            fold_models.append(_fit(_pair_model(cfg), *_stack([fit_rows[k] for k in train_idx])))
        pair_model = _fit(_pair_model(cfg), *_stack(fit_rows))
    del fit_rows

    opt_X, opt_y, opt_month, opt_t, opt_n = [], [], [], [], []
    with clock("set_fits"):
        for k, s in enumerate(data):
            opts, members = _options(s, _proba(fold_models[fold_of[k]], s.X), cfg)
            opt_X.append(option_matrix(opts))
            opt_y.append(_option_labels(s, opts, members))
            opt_month.append(np.full(len(opts), k))
            opt_t.append(opts[["t"]].assign(k=k))
            opt_n.append(len(s.prepared.transfers))
        del data, s
        X_set = np.concatenate(opt_X)
        y_set = np.concatenate(opt_y)
        m_set = np.concatenate(opt_month)

    metrics: dict[str, float] = {}
    threshold = NO_AUTO_THRESHOLD
    if n_cal > 0:
        with clock("set_fits"):
            fit_mask = m_set < n - n_cal
            cal_model = _fit(_set_model(cfg), X_set[fit_mask], y_set[fit_mask])
        with clock("calibration"):
            threshold = _calibrate(batches, known, fold_models, fold_of, cal_model, cfg, metrics)

    with clock("set_fits"):
        set_model = _fit(_set_model(cfg), X_set, y_set)
        oof_ok = [
            opt_y[k][_choose(opt_t[k], _proba(set_model, X_set[m_set == k]), opt_n[k])[0]]
            for k in range(n)
        ]
    with clock("knowledge"):
        all_obs = knowledge.combine(obs)
        if len(all_obs) > cfg.max_observations:
            all_obs = all_obs.sort_values("month").tail(cfg.max_observations)
        all_habits = knowledge.combine_habits(habit_obs)
        if len(all_habits) > cfg.max_observations:
            all_habits = all_habits.sort_values("month").tail(cfg.max_observations)
    metrics.update(
        {
            "candidate_recall": n_found / n_true if n_true else 1.0,
            "train_months": float(n),
            "train_transfers": float(sum(len(b.transfers) for b in batches)),
            "fit_transfers": float(sum(opt_n)),
            "train_pairs": float(n_pairs),
            "pairs_per_transfer": float(n_pairs / max(1, sum(opt_n))),
            "train_fit_exact_set_accuracy": float(np.concatenate(oof_ok).mean()),
            "threshold": float(threshold),
            **clock.metrics(),
            "train_seconds": time.perf_counter() - started,
        }
    )
    return TrainedMatcher(
        cfg,
        pair_model,
        set_model,
        threshold,
        all_obs.reset_index(drop=True),
        metrics,
        all_habits.reset_index(drop=True),
    )


def _calibrate(
    batches: list[MonthBatch],
    known: dict[int, tuple[pd.DataFrame, pd.DataFrame]],
    fold_models: list[HistGradientBoostingClassifier],
    fold_of: list[int],
    cal_model: HistGradientBoostingClassifier,
    cfg: MatcherConfig,
    metrics: dict[str, float],
) -> float:
    """The auto threshold, from the held-out months judged in full exactly as predict will: no
    labels to drop settled invoices, the pair model that did not see the month, the set model
    likewise. Adds the calibration metrics to `metrics`."""
    confs, oks = [], []
    for k, (payer, habits) in sorted(known.items()):
        b = batches[k]
        raw = _score_input(
            b.transfers, b.invoices, payer, cfg, b.matches, habits, teacher_forcing=False
        )
        d = _decide(fold_models[fold_of[k]], cal_model, cfg, raw)
        confs.append(d.conf)
        oks.append(_option_labels(d.s, d.opts, d.members)[d.best].astype(bool))
        del raw, d
    conf_all = np.concatenate(confs)
    ok_all = np.concatenate(oks)
    target = min(cfg.target_precision + cfg.threshold_margin, 1.0)
    threshold = max(choose_threshold(conf_all, ok_all, target), cfg.min_threshold)
    auto = conf_all >= threshold
    metrics.update(
        {
            "calibration_transfers": float(len(conf_all)),
            "calibration_auto_rate@99": auto_rate_at(conf_all, ok_all, 0.99),
            "calibration_exact_set_accuracy": float(ok_all.mean()) if len(ok_all) else 0.0,
            "calibration_auto_decision_rate": float(auto.mean()) if len(auto) else 0.0,
            "calibration_auto_decision_precision": float(ok_all[auto].mean())
            if auto.any()
            else 1.0,
        }
    )
    return threshold


__all__ = [
    "FEATURES",
    "NO_AUTO_THRESHOLD",
    "MatcherConfig",
    "TrainedMatcher",
    "choose_threshold",
    "train_matcher",
]
