"""Pair features: how well one open invoice fits one transfer.

Everything is computed column-wise over the candidate pairs (numpy sorts and bincounts, and
rapidfuzz's `cpdist`), so scoring 100k transfers costs seconds, not hours, and one transfer with
fifty invoices costs about a millisecond (no pandas group-bys or merges: their fixed cost per
call would dominate). The features are the ones a finance clerk uses: the reference in the
title (typo tolerant), the amount (equal, short by a fee or discount, a fraction, part of a
sum), who paid (account, name, and which counterparty that payer paid for before), dates, and
which of several same-amount invoices of a counterparty is the oldest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process

from shared.matching.candidates import (
    FLAG_COLUMNS,
    BlockingParams,
    PayerIndex,
    Prepared,
    lookup,
    payer_index,
)
from shared.matching.subsets import MAX_POOL, explaining_subsets

FEATURES = [
    *FLAG_COLUMNS,
    "ref_strong",
    "ref_partial",
    "ref_digits_partial",
    "number_len",
    "n_strong_ref_t",
    "strong_ref_unique",
    "title_len",
    "tax_in_title",
    "iban_eq",
    "name_sim",
    "name_in_title",
    "payer_iban_share",
    "payer_iban_n",
    "payer_name_share",
    "payer_name_n",
    "payer_title_share",
    "log_amount",
    "log_open",
    "diff",
    "rel_diff",
    "eq_open",
    "eq_amount",
    "frac",
    "is_credit",
    "partly_paid",
    "in_exact_subset",
    "in_tol_subset",
    "n_subsets",
    "n_eq_open_t",
    "n_same_amount_cp",
    "same_amount_rank_old",
    "same_amount_rank_new",
    "age_rank_cp",
    "days_since_issue",
    "days_past_due",
    "n_cand_t",
    "n_cp_t",
    "n_cand_cp",
    "cp_habit_n",
    "cp_oldest_share",
    "cp_newest_share",
]


_COLUMN = {c: k for k, c in enumerate(FEATURES)}
# Below this many pairs rapidfuzz's worker threads cost more than they save (same results).
_PARALLEL_MIN_PAIRS = 5_000


@dataclass(frozen=True)
class HabitIndex:
    """`knowledge.habit_table` as a lookup: counterparty -> (observations, oldest, newest share)."""

    values: dict[str, tuple[float, float, float]]

    @classmethod
    def of(cls, habits: pd.DataFrame | None) -> HabitIndex:
        """Index a frame as `knowledge.habit_table` returns it."""
        if habits is None or habits.empty:
            return cls({})
        rows = zip(
            (str(c) for c in habits["counterparty_id"].to_numpy(dtype=object)),
            habits["habit_n"].to_numpy(np.float64).tolist(),
            habits["oldest_share"].to_numpy(np.float64).tolist(),
            habits["newest_share"].to_numpy(np.float64).tolist(),
            strict=True,
        )
        return cls({cp: (n, old, new) for cp, n, old, new in rows})


def habit_index(habits: pd.DataFrame | HabitIndex | None) -> HabitIndex:
    """The index of a habit table (itself if it is one already)."""
    return habits if isinstance(habits, HabitIndex) else HabitIndex.of(habits)


def _group_rank(keys: list[np.ndarray], value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank (0-based, ascending `value`, ties in row order) and size of each row's key group."""
    n = len(value)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.lexsort((value, *reversed(keys)))  # stable: ties keep their row order
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for k in keys:
        ks = k[order]
        new[1:] |= ks[1:] != ks[:-1]
    starts = np.flatnonzero(new)
    group = np.cumsum(new) - 1
    sizes = np.diff(np.append(starts, n))
    rank = np.empty(n, dtype=np.int64)
    size = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - starts[group]
    size[order] = sizes[group]
    return rank, size


def _per_transfer_sum(t: np.ndarray, values: np.ndarray, n_t: int) -> np.ndarray:
    """Sum of `values` over each pair's transfer, per pair."""
    return np.bincount(t, weights=values, minlength=n_t)[t]


def _distinct_per_transfer(t: np.ndarray, codes: np.ndarray, n_t: int) -> np.ndarray:
    """Number of distinct `codes` among each pair's transfer's pairs, per pair."""
    if len(t) == 0:
        return np.zeros(0, dtype=np.int64)
    width = int(codes.max()) + 1
    distinct = np.unique(t * width + codes) // width
    return np.bincount(distinct, minlength=n_t)[t]


def _subset_features(
    t: np.ndarray,
    cp: np.ndarray,
    issue: np.ndarray,
    open_amt: np.ndarray,
    t_amt: np.ndarray,
    params: BlockingParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pair: in an exact-sum subset, in a tolerance subset, and how many such subsets exist.

    Subsets are searched among one counterparty's candidates (the oldest MAX_POOL of them),
    because one payment settling invoices of several unrelated customers does not happen.
    `cp` holds integer counterparty codes.
    """
    n = len(t)
    in_exact = np.zeros(n, dtype=np.float32)
    in_tol = np.zeros(n, dtype=np.float32)
    n_sub = np.zeros(n, dtype=np.float32)
    if n == 0:
        return in_exact, in_tol, n_sub
    order = np.lexsort((issue, cp, t))
    ts, cs = t[order], cp[order]
    brk = np.flatnonzero((np.diff(ts) != 0) | (np.diff(cs) != 0)) + 1
    starts = np.concatenate(([0], brk))
    ends = np.concatenate((brk, [n]))
    for s, e in zip(starts[ends - starts >= 2], ends[ends - starts >= 2], strict=True):
        idx = order[s : min(e, s + MAX_POOL)]
        m, f = explaining_subsets(
            open_amt[idx], float(t_amt[idx[0]]), params.max_fee, params.max_discount
        )
        if len(f) == 0:
            continue
        in_exact[idx] = m[f == 2].any(axis=0)
        in_tol[idx] = m.any(axis=0)
        n_sub[idx] = min(len(f), 50)
    return in_exact, in_tol, n_sub


def _pair_values(
    t: np.ndarray,
    cp: np.ndarray,
    known_t: np.ndarray,
    known_cp: np.ndarray,
    known: np.ndarray,
    default: float,
) -> np.ndarray:
    """Per pair (t, cp), the largest of the `known` values given for that (t, cp), or `default`."""
    out = np.full(len(t), default, dtype=np.float64)
    if len(known) == 0 or len(t) == 0:
        return out
    width = int(max(cp.max(), known_cp.max())) + 1
    key = known_t * width + known_cp
    order = np.argsort(key, kind="stable")
    key = key[order]
    first = np.flatnonzero(np.append(True, key[1:] != key[:-1]))
    keys, best = key[first], np.maximum.reduceat(known[order], first)
    query = t * width + cp
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    found = keys[pos] == query
    out[found] = best[pos[found]]
    return out


def _payer_share(
    p: Prepared, t: np.ndarray, cp: np.ndarray, prefix: str, own: np.ndarray, payer: PayerIndex
) -> tuple[np.ndarray, np.ndarray]:
    """Share of the transfers under the payer's key (account "I:" or name "N:") that paid the
    pair's counterparty (-1: key unknown), and how many transfers the key has."""
    n = len(t)
    if payer.empty or n == 0:
        return np.zeros(n, dtype=np.float32), np.zeros(n, dtype=np.float32)
    has = np.flatnonzero(own != "")
    keys = [prefix + v for v in own[has]]
    key_id = np.full(len(own), -1, dtype=np.int64)
    key_id[has] = lookup(keys, payer.ids)
    n_key_t = np.where(key_id >= 0, payer.n_key[np.maximum(key_id, 0)], 0.0)
    rows, entries = payer.entries(has, keys)
    e_cp = lookup(payer.cps[entries], p.cp_codes)
    ok = e_cp >= 0
    hits = _pair_values(t, cp, rows[ok], e_cp[ok], payer.n[entries][ok], 0.0)
    n_key = n_key_t[t]
    share = np.where(n_key > 0, hits / np.maximum(n_key, 1.0), -1.0)
    return share.astype(np.float32), n_key.astype(np.float32)


def _title_key_share(p: Prepared, t: np.ndarray, cp: np.ndarray, payer: PayerIndex) -> np.ndarray:
    """Best share with which a learned title token of the transfer points to the pair's cp."""
    if payer.empty or len(t) == 0:
        return np.zeros(len(t), dtype=np.float32)
    toks = p.t_title_tokens
    lengths = np.fromiter((len(x) for x in toks), np.int64, len(toks))
    keys = [f"T:{k}" for x in toks for k in x]
    rows, entries = payer.entries(np.repeat(np.arange(len(toks)), lengths), keys)
    e_cp = lookup(payer.cps[entries], p.cp_codes)
    ok = e_cp >= 0
    entries = entries[ok]
    share = payer.n[entries] / payer.n_key[payer.entry_key[entries]]
    return _pair_values(t, cp, rows[ok], e_cp[ok], share, 0.0).astype(np.float32)


def _habits(p: Prepared, i: np.ndarray, habits: HabitIndex) -> list[np.ndarray]:
    n = len(i)
    if not habits.values or n == 0:
        return [np.zeros(n, np.float32), np.full(n, -1.0, np.float32), np.full(n, -1.0, np.float32)]
    unknown = (0.0, -1.0, -1.0)
    per_invoice = np.array(
        [habits.values.get(cp, unknown) for cp in p.i_cp_id], dtype=np.float64
    ).reshape(-1, 3)[i]
    return [per_invoice[:, k].astype(np.float32) for k in range(3)]


def _ratio(a: np.ndarray, b: np.ndarray, scorer) -> np.ndarray:
    workers = -1 if len(a) >= _PARALLEL_MIN_PAIRS else 1
    return (process.cpdist(list(a), list(b), scorer=scorer, workers=workers) / 100.0).astype(
        np.float32
    )


def pair_features(
    p: Prepared,
    pairs: pd.DataFrame,
    payer: pd.DataFrame | PayerIndex | None,
    params: BlockingParams,
    habits: pd.DataFrame | HabitIndex | None = None,
) -> pd.DataFrame:
    """The feature matrix (float32 columns named in FEATURES), one row per candidate pair."""
    payer = payer_index(payer)
    t = pairs["t"].to_numpy(np.int64)
    i = pairs["i"].to_numpy(np.int64)
    n, n_t = len(t), len(p.transfers)
    X = np.zeros((n, len(FEATURES)), dtype=np.float32)

    def put(name: str, values) -> None:
        X[:, _COLUMN[name]] = values

    for c in FLAG_COLUMNS:
        put(c, pairs[c].to_numpy(np.float32))
    ref_strong = X[:, [_COLUMN["ref_C"], _COLUMN["ref_D"], _COLUMN["ref_Z"]]].max(axis=1)
    put("ref_strong", ref_strong)

    title_c = p.t_title_c[t]
    number_c = p.i_number_c[i]
    if n:
        put("ref_partial", _ratio(number_c, title_c, fuzz.partial_ratio))
        put("ref_digits_partial", _ratio(p.i_digits[i], p.t_digits[t], fuzz.partial_ratio))
        put("name_sim", _ratio(p.t_name[t], p.i_name[i], fuzz.token_set_ratio))
        put("name_in_title", _ratio(p.i_name_c[i], title_c, fuzz.partial_ratio))
    put("number_len", p.i_number_len[i])
    put("title_len", p.t_title_len[t])
    # A tax id (5+ characters) written in the title; only pairs with such an id are compared.
    tax_in_title = np.zeros(n, dtype=bool)
    check = np.flatnonzero(p.i_tax_len[i] >= 5)
    tax_in_title[check] = [p.i_tax_c[i[k]] in title_c[k] for k in check.tolist()]
    put("tax_in_title", tax_in_title)

    t_iban, i_iban = p.iban_codes
    put("iban_eq", (t_iban[t] == i_iban[i]) & (p.t_iban[t] != ""))
    cp = p.i_cp[i]
    share, n_key = _payer_share(p, t, cp, "I:", p.t_iban, payer)
    put("payer_iban_share", share)
    put("payer_iban_n", n_key)
    share, n_key = _payer_share(p, t, cp, "N:", p.t_name, payer)
    put("payer_name_share", share)
    put("payer_name_n", n_key)
    put("payer_title_share", _title_key_share(p, t, cp, payer))

    ta = p.t_amount[t]
    oa = p.i_open[i]
    ia = p.i_amount[i]
    diff = oa - ta
    put("log_amount", np.log1p(ta).astype(np.float32))
    put("log_open", (np.sign(oa) * np.log1p(np.abs(oa))).astype(np.float32))
    put("diff", diff.astype(np.float32))
    put("rel_diff", (diff / np.maximum(np.abs(oa), 0.01)).astype(np.float32))
    eq_open = (np.abs(diff) < 0.005).astype(np.float32)
    put("eq_open", eq_open)
    put("eq_amount", np.abs(ia - ta) < 0.005)
    put("frac", np.clip(ta / np.where(np.abs(oa) < 0.01, 0.01, oa), -10, 10).astype(np.float32))
    put("is_credit", oa < 0)
    put("partly_paid", np.abs(oa - ia) >= 0.005)

    issue = p.i_issue[i]
    booking = p.t_day[t]
    put("days_since_issue", (booking - issue).astype(np.float32))
    put("days_past_due", (booking - p.i_due[i]).astype(np.float32))

    in_exact, in_tol, n_sub = _subset_features(t, cp, issue, oa, ta, params)
    put("in_exact_subset", in_exact)
    put("in_tol_subset", in_tol)
    put("n_subsets", n_sub)

    n_strong = _per_transfer_sum(t, ref_strong, n_t)
    put("n_strong_ref_t", n_strong)
    put("strong_ref_unique", (ref_strong > 0) & (n_strong == 1))
    put("n_eq_open_t", _per_transfer_sum(t, eq_open, n_t))
    cents = np.round(oa * 100).astype(np.int64)
    # Several open invoices of one counterparty with the same amount (subscriptions): which is
    # oldest is what decides, so rank by issue date within (transfer, counterparty, amount).
    rank_old, size_same = _group_rank([t, cp, cents], issue)
    put("same_amount_rank_old", rank_old)
    put("same_amount_rank_new", size_same - 1 - rank_old)
    put("n_same_amount_cp", size_same)
    age_rank, n_cp_cand = _group_rank([t, cp], issue)
    put("age_rank_cp", age_rank)
    put("n_cand_cp", n_cp_cand)
    habit_n, oldest, newest = _habits(p, i, habit_index(habits))
    put("cp_habit_n", habit_n)
    put("cp_oldest_share", oldest)
    put("cp_newest_share", newest)
    put("n_cand_t", np.bincount(t, minlength=n_t)[t])
    put("n_cp_t", _distinct_per_transfer(t, cp, n_t))
    return pd.DataFrame(X, columns=FEATURES)
