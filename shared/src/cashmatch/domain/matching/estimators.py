"""The two gradient-boosting models (pair and set): monotonic constraints, construction, fitting,
probabilities, and the caps on their OpenMP threads."""

from __future__ import annotations

import contextlib
import functools
from typing import TypeAlias

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import ThreadpoolController, threadpool_limits

from cashmatch.domain.matching.assembly import SET_FEATURES
from cashmatch.domain.matching.config import MatcherConfig
from cashmatch.domain.matching.features import FEATURES
from cashmatch.domain.matching.forest import Forest

# Features whose effect has an obvious direction get a monotonic constraint: more reference
# similarity, an equal amount or a known payer never make a pair less likely, and a likelier
# option or a better left-out candidate move the set's probability the expected way. This keeps
# the models sane on data unlike the training data, at little cost in fit.
PAIR_MONOTONIC = {
    "ref_C": 1,
    "ref_D": 1,
    "ref_Z": 1,
    "ref_RF": 1,
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


def new_pair_model(cfg: MatcherConfig) -> HistGradientBoostingClassifier:
    """An unfitted pair model: is this invoice one the transfer pays?"""
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


def new_set_model(cfg: MatcherConfig) -> HistGradientBoostingClassifier:
    """An unfitted set model: is this option exactly the transfer's answer?"""
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


def fit(
    model: HistGradientBoostingClassifier,
    X: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray | None = None,
):
    """`model` fitted; a ValueError that says what to do when `y` holds one class only."""
    if len(np.unique(y)) < 2:
        raise ValueError(
            "training data holds only one class (no matched or no unmatched candidates); "
            "train on more labelled months"
        )
    return model.fit(X, y, sample_weight=weight)


# A fitted estimator, or its Forest (the same probabilities, faster on small inputs).
Model: TypeAlias = HistGradientBoostingClassifier | Forest


def proba(model: Model, X: pd.DataFrame | np.ndarray) -> np.ndarray:
    """P(class 1) per row of X, read as float32 as the models are fitted."""
    if len(X) == 0:
        return np.zeros(0)
    if isinstance(model, Forest):
        return model.positive_proba(np.asarray(X, dtype=np.float32))
    return model.predict_proba(np.asarray(X, dtype=np.float32))[:, 1]


def training_threads(cfg: MatcherConfig):
    """At most `cfg.n_threads` OpenMP threads while the block runs (0: no cap)."""
    # threadpoolctl ships with scikit-learn; it caps the OpenMP threads of the estimators.
    return threadpool_limits(cfg.n_threads) if cfg.n_threads > 0 else contextlib.nullcontext()


@functools.cache
def _thread_controller() -> ThreadpoolController:
    return ThreadpoolController()


def prediction_threads(cfg: MatcherConfig):
    """The thread cap of `training_threads` through one controller per process.

    `threadpool_limits()` inspects every loaded library on each call (about 5 ms, more than the
    rest of a one-transfer prediction); the libraries do not change once sklearn is imported.
    """
    if cfg.n_threads <= 0:
        return contextlib.nullcontext()
    return _thread_controller().limit(limits=cfg.n_threads)
