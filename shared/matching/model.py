"""The trained matcher: pair model, set model, learned payer knowledge and the auto threshold.

Training (`train_matcher`) works month by month, as the data arrives:

1. Candidates and pair features of each month use only the payer knowledge of the months before
   it, exactly as prediction will (no peeking at a month's own labels).
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
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from shared.matching import knowledge
from shared.matching.assembly import SET_FEATURES, Members, allocate, build_options
from shared.matching.batches import MonthBatch
from shared.matching.candidates import BlockingParams, Prepared, candidate_pairs, prepare
from shared.matching.features import FEATURES, pair_features
from shared.matching.metrics import auto_rate_at
from shared.matching.output import assemble_output
from shared.matching.subsets import fits

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
    pairs: pd.DataFrame
    X: pd.DataFrame
    y: np.ndarray | None = None
    true_sets: list[frozenset[str]] = field(default_factory=list)
    n_true_pairs: int = 0
    payer: pd.DataFrame | None = None
    habits: pd.DataFrame | None = None
    rows: np.ndarray | None = None  # training rows (subsample) of X


def _score_input(
    transfers: pd.DataFrame,
    invoices: pd.DataFrame,
    payer: pd.DataFrame | None,
    cfg: MatcherConfig,
    matches: pd.DataFrame | None = None,
    habits: pd.DataFrame | None = None,
    teacher_forcing: bool = True,
) -> _Scored:
    p = prepare(transfers, invoices)
    params = cfg.blocking()
    pairs = candidate_pairs(p, payer, params)
    if matches is not None and teacher_forcing:
        pairs = _drop_settled_earlier(p, pairs, matches)
    X = pair_features(p, pairs, payer, params, habits)
    s = _Scored(p, pairs, X, payer=payer, habits=habits)
    if matches is not None:
        lab = matches[["transfer_id", "invoice_id"]].astype(str).drop_duplicates()
        t_ids = p.transfers["transfer_id"].astype(str).to_numpy(dtype=object)
        i_ids = p.invoices["invoice_id"].astype(str).to_numpy(dtype=object)
        key = pd.Series(t_ids[pairs["t"].to_numpy()] + "|" + i_ids[pairs["i"].to_numpy()])
        true_keys = set(lab["transfer_id"] + "|" + lab["invoice_id"])
        s.y = key.isin(true_keys).to_numpy().astype(np.int8)
        sets = lab.groupby("transfer_id")["invoice_id"].agg(frozenset)
        empty: frozenset[str] = frozenset()
        s.true_sets = [sets.get(t, empty) for t in t_ids]
        s.n_true_pairs = int(lab["transfer_id"].isin(set(t_ids)).sum())
    return s


def _drop_settled_earlier(p: Prepared, pairs: pd.DataFrame, matches: pd.DataFrame) -> pd.DataFrame:
    """Training only: drop invoices that labelled transfers booked earlier in the month settled.

    open_amount is what was open at the month start; a second payment later in the month cannot
    go to the invoice the first one closed. Prediction mirrors this by settling transfers in
    booking order (see `_settle_in_order`).
    """
    tr, inv = p.transfers, p.invoices
    settle_day = knowledge.settle_days(tr, inv, matches)
    i_ids = inv["invoice_id"].astype(str)
    inv_settle = i_ids.map(settle_day).to_numpy(dtype=np.float64)
    pair_settle = inv_settle[pairs["i"].to_numpy()]
    pair_day = tr["booking_date"].to_numpy("datetime64[D]").astype(np.int64)[pairs["t"].to_numpy()]
    keep = ~(pair_settle < pair_day)  # NaN (never settled this month) compares False: kept
    return pairs[keep].reset_index(drop=True)


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


def _stack(parts: list[_Scored]) -> tuple[np.ndarray, np.ndarray]:
    X = np.concatenate([s.X.to_numpy(np.float32)[_rows(s)] for s in parts])
    y = np.concatenate([_labels(s)[_rows(s)] for s in parts])
    return X, y


def _rows(s: _Scored) -> np.ndarray:
    return s.rows if s.rows is not None else np.arange(len(s.X))


def _labels(s: _Scored) -> np.ndarray:
    if s.y is None:
        raise ValueError("training needs labelled months")
    return s.y


def _proba(model: HistGradientBoostingClassifier, X: pd.DataFrame | np.ndarray) -> np.ndarray:
    if len(X) == 0:
        return np.zeros(0)
    return model.predict_proba(np.asarray(X, dtype=np.float32))[:, 1]


def _options(s: _Scored, scores: np.ndarray, cfg: MatcherConfig):
    inv = s.prepared.invoices
    i = s.pairs["t"].to_numpy(), s.pairs["i"].to_numpy()
    frame = pd.DataFrame(
        {
            "t": i[0],
            "open": inv["open_amount"].to_numpy()[i[1]],
            "cp": inv["counterparty_id"].to_numpy(dtype=object)[i[1]],
            "issue": inv["issue_date"].to_numpy("datetime64[D]").astype(np.int64)[i[1]],
            "ref_strong": s.X["ref_strong"].to_numpy(),
        }
    )
    return build_options(
        frame,
        scores,
        len(s.prepared.transfers),
        s.prepared.transfers["amount"].to_numpy(),
        cfg.max_fee,
        cfg.max_discount,
    )


def _option_labels(s: _Scored, opts: pd.DataFrame, members: Members) -> np.ndarray:
    inv_ids = s.prepared.invoices["invoice_id"].astype(str).to_numpy(dtype=object)
    i_pos = s.pairs["i"].to_numpy()
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
    booking = s.prepared.transfers["booking_date"].to_numpy("datetime64[D]").astype(np.int64)
    amounts = s.prepared.transfers["amount"].to_numpy(np.float64)
    inv = s.prepared.invoices
    remaining = inv["open_amount"].to_numpy(np.float64).copy()
    issue = inv["issue_date"].to_numpy("datetime64[D]").astype(np.int64)
    closed = np.zeros(len(inv), dtype=bool)
    closed_on = np.full(len(inv), np.iinfo(np.int64).max)
    i_pos = s.pairs["i"].to_numpy()
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
    pair_model: HistGradientBoostingClassifier,
    set_model: HistGradientBoostingClassifier,
    cfg: MatcherConfig,
    s: _Scored,
) -> _Decision:
    """Score, assemble and settle; then redo the transfers whose invoices an earlier one closed.

    The second pass drops, for each transfer, the invoices closed by transfers booked before it
    and recomputes its features, as training does with the labels (`_drop_settled_earlier`).
    """
    scores = _proba(pair_model, s.X)
    opts, members = _options(s, scores, cfg)
    probs = _proba(set_model, opts[SET_FEATURES])
    best, conf, closed_on = _settle_in_order(s, opts, probs, members, cfg)
    t = s.pairs["t"].to_numpy()
    booking = s.prepared.transfers["booking_date"].to_numpy("datetime64[D]").astype(np.int64)
    drop = closed_on[s.pairs["i"].to_numpy()] < booking[t]
    if not drop.any():
        return _Decision(s, scores, opts, members, best, conf)
    keep = ~drop
    redo = np.isin(t, np.unique(t[drop]))[keep]
    pairs = s.pairs[keep].reset_index(drop=True)
    X = s.X[keep].reset_index(drop=True)
    X_redo = pair_features(
        s.prepared, pairs[redo].reset_index(drop=True), s.payer, cfg.blocking(), s.habits
    )
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
    probs2 = _proba(set_model, opts2[SET_FEATURES])
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
        history = history or []
        obs = knowledge.combine([self.observations, *map(knowledge.observations, history)])
        habits = knowledge.combine_habits(
            [self.habits, *map(knowledge.habit_observations, history)]
        )
        with _threads(self.config):
            s = _score_input(
                transfers,
                invoices,
                knowledge.payer_map(obs),
                self.config,
                habits=knowledge.habit_table(habits),
            )
            return self._predict_scored(s)

    def _predict_scored(self, s: _Scored) -> pd.DataFrame:
        d = _decide(self.pair_model, self.set_model, self.config, s)
        s, scores, members, best, conf = d.s, d.scores, d.members, d.best, d.conf
        i_pos = s.pairs["i"].to_numpy()
        chosen = [i_pos[members[b]] for b in best]
        pair_scores = [scores[members[b]] for b in best]
        decisions = np.where(conf >= self.threshold, "auto", "review")
        return assemble_output(s.prepared, chosen, conf, decisions, pair_scores)

    def to_bytes(self) -> bytes:
        """The model as a zip of skops estimators, JSON metadata and parquet data; no pickle."""
        from shared.matching.serialize import dump_matcher

        return dump_matcher(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainedMatcher:
        """Load a model written by to_bytes; ValueError on anything unexpected or tampered."""
        from shared.matching.serialize import load_matcher

        return load_matcher(data)


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
    batches = sorted((b for b in months if b.labelled), key=lambda b: b.month)
    if not batches:
        raise ValueError("train_matcher needs at least one labelled month")
    obs = [knowledge.observations(b) for b in batches]
    habit_obs = [knowledge.habit_observations(b) for b in batches]
    data = [
        _score_input(
            b.transfers,
            b.invoices,
            knowledge.payer_map(knowledge.combine(obs[:k])),
            cfg,
            b.matches,
            knowledge.habit_table(knowledge.combine_habits(habit_obs[:k])),
        )
        for k, b in enumerate(batches)
    ]
    rng = np.random.default_rng(cfg.seed)
    for s in data:
        _training_rows(s, cfg.easy_negative_rate, rng)
    n = len(batches)
    n_folds = max(1, min(cfg.n_folds, n))
    fold_of = [k * n_folds // n for k in range(n)]
    oof: list[np.ndarray] = [np.zeros(0)] * n
    fold_models = []
    for f in range(n_folds):
        train_idx = [k for k in range(n) if fold_of[k] != f] or list(range(n))
        model = _fit(_pair_model(cfg), *_stack([data[k] for k in train_idx]))
        fold_models.append(model)
        for k in range(n):
            if fold_of[k] == f:
                oof[k] = _proba(model, data[k].X)

    opt_X, opt_y, opt_month, opt_t, opt_n = [], [], [], [], []
    for k, s in enumerate(data):
        opts, members = _options(s, oof[k], cfg)
        opt_X.append(opts[SET_FEATURES].to_numpy(np.float32))
        opt_y.append(_option_labels(s, opts, members))
        opt_month.append(np.full(len(opts), k))
        opt_t.append(opts[["t"]].assign(k=k))
        opt_n.append(len(s.prepared.transfers))
    X_set = np.concatenate(opt_X)
    y_set = np.concatenate(opt_y)
    m_set = np.concatenate(opt_month)

    n_cal = min(cfg.calibration_months, n - 1) if n >= 2 else 0
    metrics: dict[str, float] = {}
    threshold = NO_AUTO_THRESHOLD
    if n_cal > 0:
        fit_mask = m_set < n - n_cal
        cal_model = _fit(_set_model(cfg), X_set[fit_mask], y_set[fit_mask])
        confs, oks = [], []
        for k in range(n - n_cal, n):
            # Judge the held-out months exactly as predict will: no labels to drop settled
            # invoices, the pair model that did not see the month, the set model likewise.
            b = batches[k]
            raw = _score_input(
                b.transfers,
                b.invoices,
                data[k].payer,
                cfg,
                b.matches,
                data[k].habits,
                teacher_forcing=False,
            )
            d = _decide(fold_models[fold_of[k]], cal_model, cfg, raw)
            confs.append(d.conf)
            oks.append(_option_labels(d.s, d.opts, d.members)[d.best].astype(bool))
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

    pair_model = _fit(_pair_model(cfg), *_stack(data))
    set_model = _fit(_set_model(cfg), X_set, y_set)
    all_obs = knowledge.combine(obs)
    if len(all_obs) > cfg.max_observations:
        all_obs = all_obs.sort_values("month").tail(cfg.max_observations).reset_index(drop=True)

    n_true = sum(s.n_true_pairs for s in data)
    n_found = sum(int(_labels(s).sum()) for s in data)
    oof_ok = [
        opt_y[k][_choose(opt_t[k], _proba(set_model, X_set[m_set == k]), opt_n[k])[0]]
        for k in range(n)
    ]
    metrics.update(
        {
            "candidate_recall": n_found / n_true if n_true else 1.0,
            "train_months": float(n),
            "train_transfers": float(sum(opt_n)),
            "train_pairs": float(sum(len(s.pairs) for s in data)),
            "pairs_per_transfer": float(sum(len(s.pairs) for s in data) / max(1, sum(opt_n))),
            "train_fit_exact_set_accuracy": float(np.concatenate(oof_ok).mean()),
            "threshold": float(threshold),
            "train_seconds": time.perf_counter() - started,
        }
    )
    all_habits = knowledge.combine_habits(habit_obs)
    if len(all_habits) > cfg.max_observations:
        all_habits = all_habits.sort_values("month").tail(cfg.max_observations)
    return TrainedMatcher(
        cfg, pair_model, set_model, threshold, all_obs, metrics, all_habits.reset_index(drop=True)
    )


__all__ = [
    "FEATURES",
    "NO_AUTO_THRESHOLD",
    "MatcherConfig",
    "TrainedMatcher",
    "choose_threshold",
    "train_matcher",
]
