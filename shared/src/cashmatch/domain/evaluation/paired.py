"""Paired comparison of two models on the same frozen test set, transfer by transfer.

Candidate and champion answer the same transfers, so their difference is judged on the pairs:
a transfer both get right (or both wrong) says nothing about which is better. Exact-set accuracy
is compared with the exact McNemar test (a binomial test on the discordant transfers) and an
exact interval of the difference conditional on them; `auto_rate@<p>` and the pair metrics are
statistics of the whole set, so they get a paired bootstrap (the same resampled transfers for
both models) with a fixed seed, hence the same answer on every run. docs/DESIGN.md, "Champion,
candidate and the quality gates", says why these tests and how the gates use them.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import numpy as np
import pandas as pd

from cashmatch.domain.evaluation.differences import AUTO_RATE, Difference, supports
from cashmatch.domain.matching.metrics import per_transfer

OUTCOME_COLUMNS = ["transfer_id", "exact", "confidence", "auto", "tp", "n_pred", "n_true"]
# Cells of the resample matrix per chunk (float64): bounds the bootstrap's memory to ~100 MB.
_CHUNK_CELLS = 2_000_000


def transfer_outcomes(
    predictions: pd.DataFrame, transfers: pd.DataFrame, matches: pd.DataFrame
) -> pd.DataFrame:
    """One row per transfer (`OUTCOME_COLUMNS`): what a paired comparison needs of a model."""
    pt = per_transfer(predictions, transfers, matches)
    return pd.DataFrame(
        {
            "transfer_id": pt["transfer_id"].astype(str),
            "exact": pt["exact"].astype(bool),
            "confidence": pt["confidence"].astype("float64"),
            "auto": pt["auto"].astype(bool),
            "tp": [len(p & q) for p, q in zip(pt["pred"], pt["true"], strict=True)],
            "n_pred": [len(p) for p in pt["pred"]],
            "n_true": [len(q) for q in pt["true"]],
        }
    ).astype({"tp": "int64", "n_pred": "int64", "n_true": "int64"})


def align(candidate: pd.DataFrame, champion: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both outcome frames on the same transfers in the same (sorted) order, or ValueError."""
    for name, frame in (("candidate", candidate), ("champion", champion)):
        missing = [c for c in OUTCOME_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} outcomes lack column(s) {', '.join(missing)}")
        if frame["transfer_id"].duplicated().any():
            raise ValueError(f"{name} outcomes repeat a transfer_id")
    a = candidate.assign(transfer_id=candidate["transfer_id"].astype(str))
    b = champion.assign(transfer_id=champion["transfer_id"].astype(str))
    if set(a["transfer_id"]) != set(b["transfer_id"]):
        only = len(set(a["transfer_id"]) ^ set(b["transfer_id"]))
        raise ValueError(f"candidate and champion outcomes differ in {only} transfer(s)")
    # Sorting by id makes the bootstrap's resamples independent of prediction order.
    a = a.sort_values("transfer_id", kind="stable").reset_index(drop=True)
    b = b.sort_values("transfer_id", kind="stable").reset_index(drop=True)
    return a, b


def compare(
    candidate: pd.DataFrame,
    champion: pd.DataFrame,
    metrics: tuple[str, ...] | list[str],
    *,
    alpha: float = 0.05,
    resamples: int = 2000,
    seed: int = 20240624,
) -> dict[str, Difference]:
    """Paired differences (candidate − champion) of `metrics` over the same transfers."""
    unknown = [m for m in metrics if not supports(m)]
    if unknown:
        raise ValueError(f"no paired comparison for metric(s) {', '.join(unknown)}")
    a, b = align(candidate, champion)
    result: dict[str, Difference] = {}
    boot = [m for m in metrics if m != "exact_set_accuracy"]
    if "exact_set_accuracy" in metrics:
        result["exact_set_accuracy"] = mcnemar(a["exact"], b["exact"], alpha)
    if boot:
        result.update(_bootstrap(a, b, boot, alpha, resamples, seed))
    return {m: result[m] for m in metrics}


def mcnemar(candidate_exact: pd.Series, champion_exact: pd.Series, alpha: float) -> Difference:
    """Exact McNemar test on exact-set correctness, and the exact interval of the difference.

    Given d discordant transfers, the number the candidate alone gets right is Binomial(d, π)
    with π = 1/2 when the models are equally good; the difference in accuracy is d(2π − 1)/n,
    so the Clopper–Pearson interval of π maps to one of the difference. Because the binomial at
    1/2 is symmetric, its two-sided p-value is below alpha exactly when that interval excludes 0:
    the p-value and the interval never disagree.
    """
    from scipy.stats import binomtest  # scipy.stats takes ~1 s to import: only when comparing

    x = np.asarray(candidate_exact, dtype=bool)
    y = np.asarray(champion_exact, dtype=bool)
    n = len(x)
    better, worse = int(np.sum(x & ~y)), int(np.sum(~x & y))
    d = better + worse
    if d == 0:
        low = high = 0.0
        p = 1.0
    else:
        test = binomtest(better, d, 0.5)
        ci = test.proportion_ci(confidence_level=1.0 - alpha, method="exact")
        low, high = d * (2 * ci.low - 1) / n, d * (2 * ci.high - 1) / n
        p = float(test.pvalue)
    return Difference(
        metric="exact_set_accuracy",
        candidate=float(x.mean()) if n else 1.0,
        champion=float(y.mean()) if n else 1.0,
        low=float(low),
        high=float(high),
        level=1.0 - alpha,
        method="McNemar",
        n=n,
        better=better,
        worse=worse,
        p_value=p,
    )


def _bootstrap(
    a: pd.DataFrame,
    b: pd.DataFrame,
    metrics: list[str],
    alpha: float,
    resamples: int,
    seed: int,
) -> dict[str, Difference]:
    """Percentile intervals of each metric's difference over paired resamples of transfers."""
    n = len(a)
    rng = np.random.default_rng(seed)
    stats = {m: (_statistic(m, a), _statistic(m, b)) for m in metrics}
    deltas: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    chunk = max(1, _CHUNK_CELLS // max(n, 1))
    done = 0
    while done < resamples and n:
        rows = min(chunk, resamples - done)
        counts = _resample_counts(rng, rows, n)
        for m, (of_a, of_b) in stats.items():
            deltas[m].append(of_a(counts) - of_b(counts))
        done += rows
    ones = np.ones((1, n), dtype=np.int64)
    result = {}
    for m, (of_a, of_b) in stats.items():
        values = np.concatenate(deltas[m]) if deltas[m] else np.zeros(1)
        low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
        result[m] = Difference(
            metric=m,
            candidate=float(of_a(ones)[0]) if n else 1.0,
            champion=float(of_b(ones)[0]) if n else 1.0,
            low=float(low),
            high=float(high),
            level=1.0 - alpha,
            method="paired bootstrap",
            n=n,
            resamples=resamples,
        )
    return result


def _resample_counts(rng: np.random.Generator, rows: int, n: int) -> np.ndarray:
    """How often each transfer is drawn in each of `rows` resamples of size n (rows × n)."""
    draws = rng.integers(0, n, size=(rows, n))
    flat = (draws + np.arange(rows)[:, None] * n).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n)


Statistic = Callable[[np.ndarray], np.ndarray]


def _statistic(metric: str, frame: pd.DataFrame) -> Statistic:
    """The metric of weighted copies of `frame` (weights: resamples × transfers, counts), with
    what does not depend on the weights (a sort, the columns) worked out once."""
    found = AUTO_RATE.match(metric)
    if found:
        return _auto_rate(frame, Fraction(found.group(1)) / 100)
    tp, n_pred, n_true = (frame[c].to_numpy(np.float64) for c in ("tp", "n_pred", "n_true"))

    def pair_metric(weights: np.ndarray) -> np.ndarray:
        w = weights.astype(np.float64, copy=False)
        sum_tp, sum_pred, sum_true = w @ tp, w @ n_pred, w @ n_true
        # The conventions of metrics.evaluate: a ratio over nothing is 1.0.
        precision = np.divide(sum_tp, sum_pred, out=np.ones_like(sum_tp), where=sum_pred > 0)
        recall = np.divide(sum_tp, sum_true, out=np.ones_like(sum_tp), where=sum_true > 0)
        if metric == "pair_precision":
            return precision
        if metric == "pair_recall":
            return recall
        both = precision + recall
        return np.divide(2 * precision * recall, both, out=np.zeros_like(both), where=both > 0)

    return pair_metric


def _auto_rate(frame: pd.DataFrame, target: Fraction) -> Statistic:
    """metrics.auto_rate_at on weighted copies: the largest weighted share settled by a cut
    (only after a run of equal confidence) whose weighted precision reaches `target`.

    With target p/q, precision ≥ p/q is Σ w·(q·exact − p) ≥ 0 over the settled transfers: a sum
    of integers, so the comparison is exact and no rounding moves a cut.
    """
    conf = frame["confidence"].to_numpy(np.float64)
    order = np.argsort(-conf, kind="stable")
    ends = np.append(conf[order][1:] != conf[order][:-1], True)
    p, q = target.numerator, target.denominator
    margin = q * frame["exact"].to_numpy(np.int64)[order] - p

    def auto_rate(weights: np.ndarray) -> np.ndarray:
        w = weights[:, order]
        settled = np.cumsum(w, axis=1)[:, ends]
        valid = np.cumsum(w * margin, axis=1)[:, ends] >= 0
        valid &= settled > 0
        total = settled[:, -1].astype(np.float64)
        best = np.where(valid, settled, 0).max(axis=1).astype(np.float64)
        return np.divide(best, total, out=np.zeros_like(total), where=total > 0)

    return auto_rate
