"""Training the matcher (`train_matcher`): both models, the payer knowledge and the threshold."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import TypeAlias

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

import cashmatch.domain.matching.knowledge as knowledge
from cashmatch.domain.matching.assembly import option_matrix
from cashmatch.domain.matching.batches import MonthSource
from cashmatch.domain.matching.calibration import NO_AUTO_THRESHOLD, calibrate
from cashmatch.domain.matching.config import MatcherConfig
from cashmatch.domain.matching.estimators import (
    fit,
    new_pair_model,
    new_set_model,
    proba,
    training_threads,
)
from cashmatch.domain.matching.prepared import Prepared
from cashmatch.domain.matching.scoring import Scored, score_input
from cashmatch.domain.matching.settlement import option_labels, options
from cashmatch.domain.matching.trained import TrainedMatcher

# The payer map and habit table a month was scored with.
_Knowledge: TypeAlias = tuple[pd.DataFrame, pd.DataFrame]


def train_matcher(
    months: Sequence[MonthSource], config: MatcherConfig | None = None
) -> TrainedMatcher:
    """Train on labelled months (any order; they are sorted here). Unlabelled months are skipped.

    A month is a `MonthBatch` or any `MonthSource`; each is loaded when it is worked on and let
    go after, so sources that read from storage keep one month in memory at a time (the same
    model either way).

    Training works month by month, as the data arrives:

    1. Candidates and pair features of each month use only the payer knowledge of the months
       before it, exactly as prediction will (no peeking at a month's own labels). A month
       larger than `max_fit_transfers_per_month` is scored and fitted on a stable sample of its
       transfers; the knowledge still comes from all of its labels.
    2. The pair model is cross-fitted over blocks of months, so every training month gets pair
       scores from a model that did not see it; the set model learns from answers built on
       those honest scores.
    3. The last `calibration_months` months are held out from the set model once more: the
       confidence threshold that keeps auto-settled answers at least `target_precision` exactly
       right is chosen there, on data neither model saw.
    4. Both models are refitted on everything and keep that threshold.
    """
    cfg = config or MatcherConfig()
    with training_threads(cfg):
        return _train(months, cfg)


def _train(months: Sequence[MonthSource], cfg: MatcherConfig) -> TrainedMatcher:
    started = time.perf_counter()
    clock = _Stopwatch()
    batches = sorted((b for b in months if b.labelled), key=lambda b: b.month)
    if not batches:
        raise ValueError("train_matcher needs at least one labelled month")
    n = len(batches)
    n_cal = min(cfg.calibration_months, n - 1) if n >= 2 else 0
    with clock("knowledge"):
        obs, habit_obs = [], []
        for source in batches:
            b = source.load()
            obs.append(knowledge.observations(b))
            habit_obs.append(knowledge.habit_observations(b))
            del b
    data, fit_rows, known = _score_months(batches, obs, habit_obs, n_cal, cfg, clock)
    n_true = sum(s.n_true_pairs for s in data)
    n_found = sum(int(_labels(s).sum()) for s in data)
    n_pairs = sum(len(s.pairs) for s in data)

    n_folds = max(1, min(cfg.n_folds, n))
    fold_of = [k * n_folds // n for k in range(n)]
    with clock("pair_fits"):
        fold_models, pair_model = _fit_pair_models(fit_rows, fold_of, n_folds, cfg)
    del fit_rows

    with clock("set_fits"):
        opt_X, opt_y, opt_month, opt_t, opt_n = _option_rows(data, fold_models, fold_of, cfg)
        del data  # the months' features go before their option matrices are stacked
        X_set = np.concatenate(opt_X)
        y_set = np.concatenate(opt_y)
        m_set = np.concatenate(opt_month)

    metrics: dict[str, float] = {}
    threshold = NO_AUTO_THRESHOLD
    if n_cal > 0:
        with clock("set_fits"):
            fit_mask = m_set < n - n_cal
            cal_model = fit(new_set_model(cfg), X_set[fit_mask], y_set[fit_mask])
        with clock("calibration"):
            threshold = calibrate(batches, known, fold_models, fold_of, cal_model, cfg, metrics)

    with clock("set_fits"):
        set_model = fit(new_set_model(cfg), X_set, y_set)
        oof_ok = [
            opt_y[k][_choose(opt_t[k], proba(set_model, X_set[m_set == k]), opt_n[k])[0]]
            for k in range(n)
        ]
    with clock("knowledge"):
        all_obs, all_habits = _kept_knowledge(obs, habit_obs, cfg.max_observations)
    metrics.update(
        {
            "candidate_recall": n_found / n_true if n_true else 1.0,
            "train_months": float(n),
            "train_transfers": float(sum(b.n_transfers for b in batches)),
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


def _score_months(
    batches: list[MonthSource],
    obs: list[pd.DataFrame],
    habit_obs: list[pd.DataFrame],
    n_cal: int,
    cfg: MatcherConfig,
    clock: _Stopwatch,
) -> tuple[list[Scored], list[tuple[np.ndarray, np.ndarray]], dict[int, _Knowledge]]:
    """Every month scored with the knowledge of the months before it.

    Keeps only what fitting needs: the pair model's rows and, for the out-of-fold scores the set
    model learns from, the sampled transfers' features as float32; and the knowledge each of the
    last `n_cal` (calibration) months was scored with.
    """
    rng = np.random.default_rng(cfg.seed)
    data: list[Scored] = []
    fit_rows: list[tuple[np.ndarray, np.ndarray]] = []
    known: dict[int, _Knowledge] = {}
    for k, source in enumerate(batches):
        b = source.load()
        with clock("knowledge"):
            payer = knowledge.payer_map(knowledge.combine(obs[:k]))
            habits = knowledge.habit_table(knowledge.combine_habits(habit_obs[:k]))
        with clock("scoring"):
            s = score_input(
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
        del b  # the month's raw frames go before the next month is read
        if k >= len(batches) - n_cal:
            known[k] = (payer, habits)
    return data, fit_rows, known


def _fit_pair_models(
    fit_rows: list[tuple[np.ndarray, np.ndarray]],
    fold_of: list[int],
    n_folds: int,
    cfg: MatcherConfig,
) -> tuple[list[HistGradientBoostingClassifier], HistGradientBoostingClassifier]:
    """One pair model per fold (fitted on the other folds' months), and one on every month."""
    n = len(fit_rows)
    fold_models = []
    for f in range(n_folds):
        train_idx = [k for k in range(n) if fold_of[k] != f] or list(range(n))
        fold_models.append(fit(new_pair_model(cfg), *_stack([fit_rows[k] for k in train_idx])))
    pair_model = fit(new_pair_model(cfg), *_stack(fit_rows))
    return fold_models, pair_model


def _option_rows(
    data: list[Scored],
    fold_models: list[HistGradientBoostingClassifier],
    fold_of: list[int],
    cfg: MatcherConfig,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[pd.DataFrame], list[int]]:
    """The set model's training data per month, built on out-of-fold pair scores: option
    features, labels, month index, (t, month) of each option, and the transfers scored."""
    opt_X, opt_y, opt_month, opt_t, opt_n = [], [], [], [], []
    for k, s in enumerate(data):
        opts, members = options(s, proba(fold_models[fold_of[k]], s.X), cfg)
        opt_X.append(option_matrix(opts))
        opt_y.append(option_labels(s, opts, members))
        opt_month.append(np.full(len(opts), k))
        opt_t.append(opts[["t"]].assign(k=k))
        opt_n.append(len(s.prepared.transfers))
    return opt_X, opt_y, opt_month, opt_t, opt_n


def _kept_knowledge(
    obs: list[pd.DataFrame], habit_obs: list[pd.DataFrame], cap: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All payer and habit observations, each cut to the newest `cap` rows (the model file's)."""
    all_obs = knowledge.combine(obs)
    if len(all_obs) > cap:
        all_obs = all_obs.sort_values("month").tail(cap)
    all_habits = knowledge.combine_habits(habit_obs)
    if len(all_habits) > cap:
        all_habits = all_habits.sort_values("month").tail(cap)
    return all_obs, all_habits


def _training_rows(s: Scored, rate: float, rng: np.random.Generator) -> None:
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


def _fit_rows(s: Scored) -> tuple[np.ndarray, np.ndarray]:
    """The pair model's training rows of a month (see `_training_rows`) as float32."""
    rows = _rows(s)
    return s.X.iloc[rows].to_numpy(np.float32), _labels(s)[rows]


def _stack(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([X for X, _ in parts]), np.concatenate([y for _, y in parts])


def _slim(s: Scored) -> Scored:
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


def _rows(s: Scored) -> np.ndarray:
    return s.rows if s.rows is not None else np.arange(len(s.X))


def _labels(s: Scored) -> np.ndarray:
    if s.y is None:
        raise ValueError("training needs labelled months")
    return s.y


def _choose(
    opts: pd.DataFrame, probs: np.ndarray, n_transfers: int
) -> tuple[np.ndarray, np.ndarray]:
    """Index of the most probable option per transfer and its probability."""
    order = np.lexsort((-probs, opts["t"].to_numpy()))
    t_sorted = opts["t"].to_numpy()[order]
    first = np.searchsorted(t_sorted, np.arange(n_transfers))
    best = order[first]
    return best, probs[best]
