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
    deltas: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    chunk = max(1, _CHUNK_CELLS // max(n, 1))
    done = 0
    while done < resamples and n:
        rows = min(chunk, resamples - done)
        counts = _resample_counts(rng, rows, n)
        for m in metrics:
            deltas[m].append(_weighted(m, a, counts) - _weighted(m, b, counts))
        done += rows
    ones = np.ones((1, n))
    result = {}
    for m in metrics:
        values = np.concatenate(deltas[m]) if deltas[m] else np.zeros(1)
        low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
        result[m] = Difference(
            metric=m,
            candidate=float(_weighted(m, a, ones)[0]) if n else 1.0,
            champion=float(_weighted(m, b, ones)[0]) if n else 1.0,
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
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)


def _weighted(metric: str, frame: pd.DataFrame, weights: np.ndarray) -> np.ndarray:
    """The metric of each weighted copy of `frame` (one per row of `weights`)."""
    found = AUTO_RATE.match(metric)
    if found:
        target = float(found.group(1)) / 100.0
        return _auto_rate(frame, weights, target)
    tp = weights @ frame["tp"].to_numpy(np.float64)
    n_pred = weights @ frame["n_pred"].to_numpy(np.float64)
    n_true = weights @ frame["n_true"].to_numpy(np.float64)
    # The conventions of metrics.evaluate: a ratio over nothing is 1.0 (nothing was got wrong).
    precision = np.divide(tp, n_pred, out=np.ones_like(tp), where=n_pred > 0)
    recall = np.divide(tp, n_true, out=np.ones_like(tp), where=n_true > 0)
    if metric == "pair_precision":
        return precision
    if metric == "pair_recall":
        return recall
    total = precision + recall
    return np.divide(2 * precision * recall, total, out=np.zeros_like(tp), where=total > 0)


def _auto_rate(frame: pd.DataFrame, weights: np.ndarray, target: float) -> np.ndarray:
    """metrics.auto_rate_at on weighted copies: the largest weighted share settled at a cut
    (only after a run of equal confidence) whose weighted precision reaches `target`."""
    conf = frame["confidence"].to_numpy(np.float64)
    order = np.argsort(-conf, kind="stable")
    conf = conf[order]
    ok = frame["exact"].to_numpy(np.float64)[order]
    w = weights[:, order]
    cum_w = np.cumsum(w, axis=1)
    cum_ok = np.cumsum(w * ok, axis=1)
    ends = np.append(conf[1:] != conf[:-1], True)
    cum_w, cum_ok = cum_w[:, ends], cum_ok[:, ends]
    valid = (cum_w > 0) & (cum_ok >= (target - 1e-12) * cum_w)
    total = weights.sum(axis=1)
    settled = np.where(valid, cum_w, 0.0).max(axis=1)
    return np.divide(settled, total, out=np.zeros_like(total), where=total > 0)
