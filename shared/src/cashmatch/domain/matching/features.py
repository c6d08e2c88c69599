"""Pair features: how well one open invoice fits one transfer.

Everything is computed column-wise over the candidate pairs (numpy sorts and bincounts, and
rapidfuzz's `cpdist`), so scoring 100k transfers costs seconds, not hours, and one transfer with
fifty invoices costs about half a millisecond (no pandas group-bys or merges: their fixed cost per
call would dominate). The features are the ones a finance clerk uses: the reference in the
title (typo tolerant), the amount (equal, short by a fee or discount, a fraction, part of a
sum), who paid (account, name, and which counterparty that payer paid for before), dates, and
which of several same-amount invoices of a counterparty is the oldest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process

from cashmatch.domain.matching.candidates import FLAG_COLUMNS, BlockingParams
from cashmatch.domain.matching.codes import expand, lookup
from cashmatch.domain.matching.indexes import HabitIndex, PayerIndex, habit_index, payer_index
from cashmatch.domain.matching.prepared import Prepared
from cashmatch.domain.matching.subsets import MAX_POOL, explaining_subsets
from cashmatch.domain.matching.tables import Columns

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
    "vat_fits",
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
_FLAGS = [_COLUMN[c] for c in FLAG_COLUMNS]
# Built once: making the column index from a list of names costs more than the rest of the
# frame for a one-transfer input.
_INDEX = pd.Index(FEATURES)
_KEY_KINDS = {"I": 0, "N": 1, "T": 2}  # payer keys: account, name, title token
_PAYER_COLUMNS = [
    "payer_iban_share",
    "payer_iban_n",
    "payer_name_share",
    "payer_name_n",
    "payer_title_share",
]
# Below this many pairs rapidfuzz's worker threads cost more than they save (same results).
_PARALLEL_MIN_PAIRS = 5_000


def _sorted_groups(keys: list[np.ndarray], value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ordered by `keys`, then ascending `value` (ties in row order), and the bounds of
    the key groups in that order (where each starts, then the number of rows)."""
    n = len(value)
    order = np.lexsort((value, *reversed(keys)))  # stable: ties keep their row order
    new = np.zeros(n + 1, dtype=bool)
    new[[0, n]] = True
    for k in keys:
        ks = k[order]
        new[1:n] |= ks[1:] != ks[:-1]
    return order, np.flatnonzero(new)


def _group_rank(order: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank (0-based, in `order`) and size of each row's group, as `_sorted_groups` gives them."""
    n = len(order)
    sizes = bounds[1:] - bounds[:-1]
    rank = np.empty(n, dtype=np.int64)
    size = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - bounds[:-1].repeat(sizes)
    size[order] = sizes.repeat(sizes)
    return rank, size


def _per_transfer_sum(t: np.ndarray, values: np.ndarray, n_t: int) -> np.ndarray:
    """Sum of `values` over each pair's transfer, per pair."""
    return np.bincount(t, weights=values, minlength=n_t)[t]


def _subset_features(
    order: np.ndarray,
    bounds: np.ndarray,
    open_amt: np.ndarray,
    t_amt: np.ndarray,
    params: BlockingParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pair: in an exact-sum subset, in a tolerance subset, and how many such subsets exist.

    Subsets are searched among one counterparty's candidates (the oldest MAX_POOL of them),
    because one payment settling invoices of several unrelated customers does not happen.
    `order` and `bounds` are the (transfer, counterparty) groups, oldest issue first.
    """
    n = len(order)
    in_exact = np.zeros(n, dtype=np.float32)
    in_tol = np.zeros(n, dtype=np.float32)
    n_sub = np.zeros(n, dtype=np.float32)
    starts, ends = bounds[:-1], bounds[1:]
    pools = ends - starts >= 2
    for s, e in zip(starts[pools].tolist(), ends[pools].tolist(), strict=True):
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


def _largest_per_key(
    query: np.ndarray, keys: np.ndarray, values: np.ndarray, default: float
) -> np.ndarray:
    """Per `query` key, the largest of the `values` given for that key in `keys`, or `default`."""
    out = np.full(len(query), default, dtype=np.float64)
    if len(keys) == 0 or len(query) == 0:
        return out
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    new = np.ones(len(keys), dtype=bool)
    new[1:] = keys[1:] != keys[:-1]
    first = np.flatnonzero(new)
    keys, best = keys[first], np.maximum.reduceat(values[order], first)
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    found = keys[pos] == query
    out[found] = best[pos[found]]
    return out


def _payer_features(
    p: Prepared, t: np.ndarray, cp: np.ndarray, payer: PayerIndex
) -> list[np.ndarray]:
    """What earlier labels say about each pair's payer, per pair: the share of the transfers
    under the payer's account (key "I:") that paid the pair's counterparty (-1: key unknown) and
    how many transfers the key has, the same for the payer's name ("N:"), and the best share
    with which a learned title token ("T:") of the transfer points to the counterparty."""
    n, n_t = len(t), len(p.transfers)
    if payer.empty or n == 0:
        return [np.zeros(n, dtype=np.float32) for _ in range(5)]
    # The keys of all three kinds in one lookup (blocking has listed them already).
    key_t, keys = p.t_payer_keys
    kind = np.fromiter((_KEY_KINDS[key[0]] for key in keys), np.int64, len(keys))
    k = lookup(keys, payer.ids)
    n_key = np.zeros((2, n_t))  # transfers seen per account and per name key, 0 when unknown
    own = (kind < 2) & (k >= 0)
    n_key[kind[own], key_t[own]] = payer.n_key[k[own]]
    known = np.flatnonzero(k >= 0)
    pos, entries = expand(known, payer.start[k[known]], payer.start[k[known] + 1])
    e_cp = lookup(payer.cps[entries], p.cp_codes)
    ok = e_cp >= 0
    pos, entries = pos[ok], entries[ok]
    # A title token counts with the share of its transfers that paid the counterparty.
    value = payer.n[entries] / np.where(kind[pos] == 2, payer.n_key[k[pos]], 1.0)
    # One key per (kind, transfer, counterparty).
    n_cp = len(p.cp_codes)
    pair_key = t * n_cp + cp
    best = _largest_per_key(
        np.concatenate((pair_key, pair_key + n_t * n_cp, pair_key + 2 * n_t * n_cp)),
        (kind[pos] * n_t + key_t[pos]) * n_cp + e_cp[ok],
        value,
        0.0,
    ).reshape(3, n)
    n_k = n_key[:, t]
    share = np.where(n_k > 0, best[:2] / np.maximum(n_k, 1.0), -1.0).astype(np.float32)
    n_k = n_k.astype(np.float32)
    return [share[0], n_k[0], share[1], n_k[1], best[2].astype(np.float32)]


def _habits(p: Prepared, cp: np.ndarray, habits: HabitIndex) -> list[np.ndarray]:
    n = len(cp)
    if not habits.values or n == 0:
        return [np.zeros(n, np.float32), np.full(n, -1.0, np.float32), np.full(n, -1.0, np.float32)]
    unknown = (0.0, -1.0, -1.0)
    # One row per counterparty code (`cp_codes` holds the ids in code order).
    per_cp = np.array([habits.values.get(c, unknown) for c in p.cp_codes], dtype=np.float64)
    per_pair = per_cp[cp].astype(np.float32)
    return [per_pair[:, 0], per_pair[:, 1], per_pair[:, 2]]


def _ratio(a: np.ndarray, b: np.ndarray, scorer) -> np.ndarray:
    workers = -1 if len(a) >= _PARALLEL_MIN_PAIRS else 1
    return (process.cpdist(list(a), list(b), scorer=scorer, workers=workers) / 100.0).astype(
        np.float32
    )


def pair_features(
    p: Prepared,
    pairs: pd.DataFrame | Columns,
    payer: pd.DataFrame | PayerIndex | None,
    params: BlockingParams,
    habits: pd.DataFrame | HabitIndex | None = None,
) -> pd.DataFrame:
    """The feature matrix (float32 columns named in FEATURES), one row per candidate pair."""
    payer = payer_index(payer)
    t, i, X = _flag_matrix(pairs)
    n_t = len(p.transfers)
    ref_strong = _reference_features(X, p, t, i)
    cp = p.i_cp[i]
    _account_and_payer_features(X, p, t, i, cp, payer)
    ta, oa, eq_open = _amount_features(X, p, t, i)
    issue = _date_features(X, p, t, i)
    _counterparty_features(X, t, cp, issue, oa, ta, n_t, params)
    _transfer_features(X, t, ref_strong, eq_open, n_t)
    _same_amount_features(X, t, cp, oa, issue)
    habit_n, oldest, newest = _habits(p, cp, habit_index(habits))
    _put(X, "cp_habit_n", habit_n)
    _put(X, "cp_oldest_share", oldest)
    _put(X, "cp_newest_share", newest)
    _put(X, "n_cand_t", np.bincount(t, minlength=n_t)[t])
    return pd.DataFrame(X, columns=_INDEX, copy=False)


def _put(X: np.ndarray, name: str, values) -> None:
    X[:, _COLUMN[name]] = values


def _flag_matrix(pairs: pd.DataFrame | Columns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs' transfer and invoice positions, and the feature matrix with their blocking
    flags filled in (every other feature 0)."""
    # One conversion of the whole frame: selecting its columns one by one costs more than all
    # the features of a one-transfer input. The copy (half the size of X for a large input)
    # lives only in here, not to the end of pair_features.
    columns = {c: k for k, c in enumerate(list(pairs.columns))}
    raw = pairs.to_numpy(np.int64)
    t = raw[:, columns["t"]].copy()
    i = raw[:, columns["i"]].copy()
    X = np.zeros((len(t), len(FEATURES)), dtype=np.float32)
    X[:, _FLAGS] = raw[:, [columns[c] for c in FLAG_COLUMNS]]
    return t, i, X


def _reference_features(X: np.ndarray, p: Prepared, t: np.ndarray, i: np.ndarray) -> np.ndarray:
    """The invoice number in the title (exact keys, typo-tolerant similarity), the names and
    the tax id there, and the lengths; returns `ref_strong`, which later features count."""
    ref_strong = X[:, [_COLUMN["ref_C"], _COLUMN["ref_D"], _COLUMN["ref_Z"]]].max(axis=1)
    _put(X, "ref_strong", ref_strong)

    title_c = p.t_title_c[t]
    number_c = p.i_number_c[i]
    if len(t):
        _put(X, "ref_partial", _ratio(number_c, p.t_ref_c[t], fuzz.partial_ratio))
        _put(X, "ref_digits_partial", _ratio(p.i_digits[i], p.t_digits[t], fuzz.partial_ratio))
        _put(X, "name_sim", _ratio(p.t_name[t], p.i_name[i], fuzz.token_set_ratio))
        _put(X, "name_in_title", _ratio(p.i_name_c[i], title_c, fuzz.partial_ratio))
    _put(X, "number_len", p.i_number_len[i])
    _put(X, "title_len", p.t_title_len[t])
    # A tax id (5+ characters) written in the title; only pairs with such an id are compared.
    tax_in_title = np.zeros(len(t), dtype=bool)
    check = np.flatnonzero(p.i_tax_len[i] >= 5)
    tax_in_title[check] = [p.i_tax_c[i[k]] in title_c[k] for k in check.tolist()]
    _put(X, "tax_in_title", tax_in_title)
    _put(X, "vat_fits", _vat_fits(p.t_vat[t], p.i_amount[i]))
    return ref_strong


# VAT rates in Poland (standard, reduced, super-reduced); a split payment's /VAT/ is the VAT of
# the invoices it pays, so it fits an invoice whose gross carries that VAT at one of them.
_VAT_RATES = np.array([0.23, 0.08, 0.05])


def _vat_fits(vat: np.ndarray, gross: np.ndarray) -> np.ndarray:
    """Per pair: 1 when the title's VAT amount is the invoice's VAT at a Polish rate (within
    rounding), 0 when it is not, -1 when the title states no VAT."""
    out = np.full(len(vat), -1.0, dtype=np.float32)
    has = ~np.isnan(vat)
    if has.any():
        expected = np.abs(gross[has, None]) * (_VAT_RATES / (1 + _VAT_RATES))
        out[has] = (np.abs(expected - vat[has, None]) <= 0.011).any(axis=1)
    return out


def _account_and_payer_features(
    X: np.ndarray, p: Prepared, t: np.ndarray, i: np.ndarray, cp: np.ndarray, payer: PayerIndex
) -> None:
    """The payer's account equal to the invoice's, and what earlier labels say of the payer."""
    t_iban, i_iban = p.iban_codes
    _put(X, "iban_eq", (t_iban[t] == i_iban[i]) & (p.t_iban[t] != ""))
    for name, values in zip(_PAYER_COLUMNS, _payer_features(p, t, cp, payer), strict=True):
        _put(X, name, values)


def _amount_features(
    X: np.ndarray, p: Prepared, t: np.ndarray, i: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How the transfer amount relates to the invoice's open and gross amounts; returns the
    transfer amount, the open amount and `eq_open` of each pair."""
    ta = p.t_amount[t]
    oa = p.i_open[i]
    ia = p.i_amount[i]
    diff = oa - ta
    _put(X, "log_amount", np.log1p(ta).astype(np.float32))
    _put(X, "log_open", (np.sign(oa) * np.log1p(np.abs(oa))).astype(np.float32))
    _put(X, "diff", diff.astype(np.float32))
    _put(X, "rel_diff", (diff / np.maximum(np.abs(oa), 0.01)).astype(np.float32))
    eq_open = (np.abs(diff) < 0.005).astype(np.float32)
    _put(X, "eq_open", eq_open)
    _put(X, "eq_amount", np.abs(ia - ta) < 0.005)
    _put(X, "frac", np.clip(ta / np.where(np.abs(oa) < 0.01, 0.01, oa), -10, 10).astype(np.float32))
    _put(X, "is_credit", oa < 0)
    _put(X, "partly_paid", np.abs(oa - ia) >= 0.005)
    return ta, oa, eq_open


def _date_features(X: np.ndarray, p: Prepared, t: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Days from the invoice's issue and due date to the booking; returns the issue days."""
    issue = p.i_issue[i]
    booking = p.t_day[t]
    _put(X, "days_since_issue", (booking - issue).astype(np.float32))
    _put(X, "days_past_due", (booking - p.i_due[i]).astype(np.float32))
    return issue


def _counterparty_features(
    X: np.ndarray,
    t: np.ndarray,
    cp: np.ndarray,
    issue: np.ndarray,
    oa: np.ndarray,
    ta: np.ndarray,
    n_t: int,
    params: BlockingParams,
) -> None:
    """The invoice among its counterparty's candidates of the transfer: age rank, how many, and
    whether it is part of a subset of them that explains the amount."""
    # Several open invoices of one counterparty: which is oldest is what decides.
    order, bounds = _sorted_groups([t, cp], issue)
    age_rank, n_cp_cand = _group_rank(order, bounds)
    _put(X, "age_rank_cp", age_rank)
    _put(X, "n_cand_cp", n_cp_cand)
    # Distinct counterparties of a transfer: its (transfer, counterparty) groups.
    _put(X, "n_cp_t", np.bincount(t[order[bounds[:-1]]], minlength=n_t)[t])
    in_exact, in_tol, n_sub = _subset_features(order, bounds, oa, ta, params)
    _put(X, "in_exact_subset", in_exact)
    _put(X, "in_tol_subset", in_tol)
    _put(X, "n_subsets", n_sub)


def _transfer_features(
    X: np.ndarray, t: np.ndarray, ref_strong: np.ndarray, eq_open: np.ndarray, n_t: int
) -> None:
    """Counts over the transfer's candidates: strong references and equal open amounts."""
    n_strong = _per_transfer_sum(t, ref_strong, n_t)
    _put(X, "n_strong_ref_t", n_strong)
    _put(X, "strong_ref_unique", (ref_strong > 0) & (n_strong == 1))
    _put(X, "n_eq_open_t", _per_transfer_sum(t, eq_open, n_t))


def _same_amount_features(
    X: np.ndarray, t: np.ndarray, cp: np.ndarray, oa: np.ndarray, issue: np.ndarray
) -> None:
    """Rank from oldest and newest among the counterparty's candidates of the same amount."""
    cents = np.round(oa * 100).astype(np.int64)
    # Same amount too (subscriptions): rank by issue date within (transfer, counterparty, amount).
    rank_old, size_same = _group_rank(*_sorted_groups([t, cp, cents], issue))
    _put(X, "same_amount_rank_old", rank_old)
    _put(X, "same_amount_rank_new", size_same - 1 - rank_old)
    _put(X, "n_same_amount_cp", size_same)
