"""Metrics of a set of predictions against human labels.

docs/DESIGN.md, "The matching task and its metrics", defines the task these measure.

A transfer's answer is exactly right when its predicted invoice set equals the labelled set, both
empty included. `auto_rate@99` is the business number: the largest share of transfers that can be
settled without a person, cutting at some confidence, with at least 99% of them exactly right.
Undefined ratios (no transfer in the group) are reported as 1.0 - nothing was got wrong - next
to the group's count, so every value stays a finite float that JSON and pydantic accept.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def auto_rate_at(confidence: np.ndarray, correct: np.ndarray, target: float) -> float:
    """Largest share of items that a confidence cut auto-settles with precision >= target.

    Items with equal confidence are either all in or all out: a threshold cannot split them.
    """
    n = len(confidence)
    if n == 0:
        return 0.0
    order = np.argsort(-np.asarray(confidence, dtype=np.float64), kind="stable")
    conf = np.asarray(confidence, dtype=np.float64)[order]
    ok = np.asarray(correct, dtype=np.float64)[order]
    cum_ok = np.cumsum(ok)
    counts = np.arange(1, n + 1)
    # Only cut after the last item of a run of equal confidence.
    ends = np.append(conf[1:] != conf[:-1], True)
    prec = cum_ok / counts
    valid = ends & (prec >= target - 1e-12)
    if not valid.any():
        return 0.0
    return float(counts[valid].max() / n)


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 1.0


def _id_set(ids: pd.Series) -> frozenset[str]:
    return frozenset(str(v) for v in ids)


def per_transfer(
    predictions: pd.DataFrame, transfers: pd.DataFrame, matches: pd.DataFrame
) -> pd.DataFrame:
    """One row per transfer: predicted and true invoice sets, confidence, decision, exactness."""
    ids = transfers["transfer_id"].astype(str).tolist()
    pred = predictions.copy()
    pred["transfer_id"] = pred["transfer_id"].astype(str)
    has_inv = pred["invoice_id"].notna()
    pred_sets = pred[has_inv].groupby("transfer_id")["invoice_id"].agg(_id_set)
    conf = pred.groupby("transfer_id")["confidence"].max()
    if "decision" in pred.columns:
        auto = pred.groupby("transfer_id")["decision"].agg(lambda s: bool((s == "auto").any()))
    else:
        auto = pd.Series(dtype=bool)
    score_col = "pair_score" if "pair_score" in pred.columns else "confidence"
    ranked = pred[has_inv].sort_values(score_col, ascending=False, kind="stable")
    top1 = ranked.drop_duplicates("transfer_id").set_index("transfer_id")["invoice_id"]
    m = matches.copy()
    m["transfer_id"] = m["transfer_id"].astype(str)
    true_sets = m.groupby("transfer_id")["invoice_id"].agg(_id_set)
    empty: frozenset[str] = frozenset()
    out = pd.DataFrame({"transfer_id": ids})
    out["pred"] = pd.Series([pred_sets.get(t, empty) for t in ids], dtype=object)
    out["true"] = pd.Series([true_sets.get(t, empty) for t in ids], dtype=object)
    out["confidence"] = [float(conf.get(t, 0.0)) for t in ids]
    out["auto"] = [bool(auto.get(t, False)) for t in ids]
    out["top1"] = [top1.get(t) for t in ids]
    out["exact"] = [p == q for p, q in zip(out["pred"], out["true"], strict=True)]
    return out


def evaluate(
    predictions: pd.DataFrame,
    transfers: pd.DataFrame,
    matches: pd.DataFrame,
    target_precision: float = 0.99,
) -> dict[str, float]:
    """All matching metrics for `transfers` (predictions of other transfers are ignored).

    `auto_rate@99` is always computed at 99%; when `target_precision` differs, the rate at that
    target is added as `auto_rate@<percent>`.
    """
    pt = per_transfer(predictions, transfers, matches)
    n = len(pt)
    exact = pt["exact"].to_numpy(dtype=bool)
    conf = pt["confidence"].to_numpy(dtype=np.float64)
    tp = sum(len(p & q) for p, q in zip(pt["pred"], pt["true"], strict=True))
    n_pred = sum(len(p) for p in pt["pred"])
    n_true = sum(len(q) for q in pt["true"])
    precision = _ratio(tp, n_pred)
    recall = _ratio(tp, n_true)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    sizes = np.array([len(q) for q in pt["true"]])
    has_true = sizes >= 1
    top1_ok = [t is not None and t in q for t, q in zip(pt["top1"], pt["true"], strict=True)]
    auto = pt["auto"].to_numpy(dtype=bool)
    res = {
        "n_transfers": float(n),
        "auto_rate@99": auto_rate_at(conf, exact, 0.99),
        "exact_set_accuracy": _ratio(float(exact.sum()), n),
        "pair_precision": precision,
        "pair_recall": recall,
        "pair_f1": float(f1),
        "top1_accuracy": _ratio(float(np.sum(np.array(top1_ok) & has_true)), float(has_true.sum())),
        "auto_decision_rate": _ratio(float(auto.sum()), n) if n else 0.0,
        "auto_decision_precision": _ratio(float(exact[auto].sum()), float(auto.sum())),
        "multi_exact_set_accuracy": _ratio(
            float(exact[sizes >= 2].sum()), float((sizes >= 2).sum())
        ),
        "single_exact_set_accuracy": _ratio(
            float(exact[sizes == 1].sum()), float((sizes == 1).sum())
        ),
        "none_exact_set_accuracy": _ratio(
            float(exact[sizes == 0].sum()), float((sizes == 0).sum())
        ),
        "n_multi": float((sizes >= 2).sum()),
        "n_none": float((sizes == 0).sum()),
    }
    pct = round(target_precision * 100, 4)
    key = f"auto_rate@{int(pct) if pct == int(pct) else pct}"
    if key not in res:
        res[key] = auto_rate_at(conf, exact, target_precision)
    return res
