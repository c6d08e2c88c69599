"""The auto threshold: the lowest confidence at which held-out answers are right often enough,
chosen on calibration months neither model saw."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from cashmatch.domain.matching.batches import MonthSource
from cashmatch.domain.matching.config import MatcherConfig
from cashmatch.domain.matching.metrics import auto_rate_at
from cashmatch.domain.matching.scoring import score_input
from cashmatch.domain.matching.settlement import decide, option_labels

NO_AUTO_THRESHOLD = 1.01  # above every probability: nothing is settled automatically


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


def auto_cut(confidence: np.ndarray, correct: np.ndarray, cfg: MatcherConfig) -> float:
    """The threshold the model keeps: the calibration months' cut (with the margin against
    their noise), never below `cfg.min_threshold`. Months from the training world are easier
    than the ones to come; their cut alone would settle answers the model itself doubts."""
    target = min(cfg.target_precision + cfg.threshold_margin, 1.0)
    return max(choose_threshold(confidence, correct, target), cfg.min_threshold)


def calibrate(
    batches: list[MonthSource],
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
        b = batches[k].load()
        raw = score_input(
            b.transfers, b.invoices, payer, cfg, b.matches, habits, teacher_forcing=False
        )
        d = decide(fold_models[fold_of[k]], cal_model, cfg, raw)
        confs.append(d.conf)
        oks.append(option_labels(d.s, d.opts, d.members)[d.best].astype(bool))
        del raw, d, b
    conf_all = np.concatenate(confs)
    ok_all = np.concatenate(oks)
    threshold = auto_cut(conf_all, ok_all, cfg)
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
