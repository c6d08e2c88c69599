"""Set assembly: from scored pairs to one answer per transfer, and its allocation.

For each transfer a handful of possible answers ("options") is built: no invoice, each of the best
single invoices (paid fully, short by a fee or discount, or partly), every subset of the best
candidates whose open amounts explain the transfer amount (credit notes net in), and the set of
all invoices its title references. Each option gets set-level features; a second model judges
which option is exactly right and how likely that is, which is the confidence of the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cashmatch.domain.matching.cp_sets import counterparty_sets
from cashmatch.domain.matching.subsets import MAX_POOL, explains, fits, masks

SET_FEATURES = [
    "kind",
    "size",
    "p_min",
    "p_mean",
    "p_max",
    "p_out_max",
    "p_best",
    "p_second",
    "ll",
    "ll_margin",
    "rel_resid",
    "abs_resid",
    "fit",
    "n_credit",
    "n_cp",
    "n_ref_in",
    "n_ref_out",
    "n_cand",
    "top1_in",
    "n_fit_subsets",
    "log_amount",
]

# Built once: making a string Index costs more than the rest of a small option frame.
_FEATURE_COLUMNS = pd.Index(SET_FEATURES)

KIND_EMPTY, KIND_SINGLE, KIND_SUBSET, KIND_REFS, KIND_REFS_COMPLETED, KIND_OLDEST_RUN = range(6)
N_SINGLES = 4
MAX_SUBSET_OPTIONS = 6
MIN_POOL_SCORE = 1e-3


def allocate(amount: float, open_amounts: np.ndarray) -> np.ndarray:
    """Split a transfer amount over invoices in the given order.

    Credit notes (negative open amounts) are netted in full; positive invoices then take what is
    left, each at most its open amount, so the allocation never exceeds what is owed. When the
    invoices owe less than the transfer (an overpayment) the rest stays unallocated.
    """
    opens = np.asarray(open_amounts, dtype=np.float64)
    alloc = np.zeros(len(opens))
    credits = opens < 0
    alloc[credits] = opens[credits]
    remaining = round(amount - float(opens[credits].sum()), 2)
    for j in np.flatnonzero(~credits):
        take = min(remaining, float(opens[j]))
        take = max(take, 0.0)
        alloc[j] = round(take, 2)
        remaining = round(remaining - take, 2)
    return alloc


def _logit_terms(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(q), np.log1p(-q)


class Members:
    """The pair rows of each option, stored flat (CSR style): `members[j]` is option j's rows."""

    def __init__(self, ptr: np.ndarray, rows: np.ndarray) -> None:
        self.ptr = ptr
        self.rows = rows

    def __len__(self) -> int:
        return len(self.ptr) - 1

    def __getitem__(self, j: int) -> np.ndarray:
        return self.rows[self.ptr[j] : self.ptr[j + 1]]

    def __iter__(self):
        return (self.rows[a:b] for a, b in zip(self.ptr[:-1], self.ptr[1:], strict=True))


class _OptionSink:
    """Collects the multi-invoice options of one transfer, skipping duplicates."""

    def __init__(self) -> None:
        self.t: list[int] = []
        self.kind: list[int] = []
        self.rows: list[np.ndarray] = []
        self._seen: set[tuple[int, ...]] = set()

    def add(self, t: int, kind: int, rows: np.ndarray) -> None:
        key = (t, *sorted(rows.tolist()))
        if len(rows) < 2 or key in self._seen:
            return
        self._seen.add(key)
        self.t.append(t)
        self.kind.append(kind)
        self.rows.append(rows)


def _best_fitting(
    pool: np.ndarray,
    p: np.ndarray,
    open_amt: np.ndarray,
    base: float,
    amount: float,
    max_fee: float,
    max_discount: float,
    min_size: int,
    keep: int,
) -> tuple[list[np.ndarray], int]:
    """The `keep` likeliest subsets of `pool` that, with `base` added, explain `amount`."""
    k = len(pool)
    if k < min_size or k == 0:
        return [], 0
    m, m_float, sizes = masks(k)
    sums = base + m_float @ open_amt[pool]
    ok = explains(sums, amount, max_fee, max_discount) & (sizes >= min_size)
    n_ok = int(np.count_nonzero(ok))
    if not n_ok:
        return [], 0
    lp, lq = _logit_terms(p)
    ll = m_float[ok] @ (lp - lq)
    m = m[ok]
    best = (-ll).argsort(kind="stable")[:keep]
    return [pool[m[b]] for b in best.tolist()], n_ok


def _multi_options(
    order: np.ndarray,
    bounds: np.ndarray,
    scores: np.ndarray,
    open_amt: np.ndarray,
    ref: np.ndarray,
    cp_codes: np.ndarray,
    issue: np.ndarray,
    t_amounts: np.ndarray,
    max_fee: float,
    max_discount: float,
) -> tuple[list[int], list[int], list[np.ndarray], np.ndarray]:
    """Multi-invoice options of the transfers with two or more candidates.

    Five families: subsets of the best candidates that explain the amount; the invoices the title
    references; those references completed by other invoices of the same counterparties (credit
    notes not mentioned, references cut off by the 140-character limit); the oldest-first
    run of one counterparty's open invoices (a customer clearing its balance); and, for a
    transfer only a set can pay, sets over all of a counterparty's candidates (periods, periods
    less a disputed invoice, an exact bounded subset-sum: `cp_sets`).
    """
    n_t = len(bounds) - 1
    counts = np.diff(bounds)
    n_fit = np.zeros(n_t)
    sink = _OptionSink()
    # Python ints index and slice faster than numpy scalars in this per-transfer loop.
    starts = bounds.tolist()
    lp_all, lq_all = _logit_terms(scores)
    gain = lp_all - lq_all
    for t in np.flatnonzero(counts >= 2).tolist():
        idx = order[starts[t] : starts[t + 1]]
        p = scores[idx]
        cps = cp_codes[idx]
        amount = float(t_amounts[t])
        pool_n = min(MAX_POOL, int(np.count_nonzero(p >= MIN_POOL_SCORE)))
        if pool_n >= 2 and open_amt[idx[:pool_n]].clip(min=0).sum() >= amount - 0.011:
            found, n_fit[t] = _best_fitting(
                idx[:pool_n],
                p[:pool_n],
                open_amt,
                0.0,
                amount,
                max_fee,
                max_discount,
                2,
                MAX_SUBSET_OPTIONS,
            )
            for rows in found:
                sink.add(t, KIND_SUBSET, rows)
        is_ref = ref[idx] > 0
        refs = idx[is_ref]
        if len(refs):
            sink.add(t, KIND_REFS, refs)
            # Few candidates and fewer references: comparing all against all beats np.isin.
            same_cp = (cps[:, None] == cps[is_ref]).any(axis=1)
            rest = idx[~is_ref & same_cp][:MAX_POOL]
            found, _ = _best_fitting(
                rest,
                scores[rest],
                open_amt,
                float(open_amt[refs].sum()),
                amount,
                max_fee,
                max_discount,
                1,
                2,
            )
            for rows in found:
                sink.add(t, KIND_REFS_COMPLETED, np.concatenate([refs, rows]))
        for cp in sorted(set(cps[:3].tolist())):
            mine = idx[cps == cp]
            if len(mine) < 2:
                continue
            # Array methods, not np.* functions: their wrappers add up over 100k transfers.
            mine = mine[issue[mine].argsort(kind="stable")]
            run = open_amt[mine].cumsum()
            ok = explains(run, amount, max_fee, max_discount).nonzero()[0]
            for j in ok[:2].tolist():
                sink.add(t, KIND_OLDEST_RUN, mine[: j + 1])
            for kind, rows in counterparty_sets(
                mine, open_amt, gain, amount, max_fee, max_discount
            ):
                sink.add(t, kind, rows)
    return sink.t, sink.kind, sink.rows, n_fit


def option_matrix(opts: pd.DataFrame) -> np.ndarray:
    """The SET_FEATURES of `build_options`' frame as one float32 matrix, in that order.

    The frame is `t` then SET_FEATURES (see below); selecting 21 columns by name costs
    ~0.15 ms even on a few rows, more than the set model's whole prediction.
    """
    return opts.to_numpy(np.float32)[:, 1:]


def build_options(
    pairs: pd.DataFrame | Mapping[str, np.ndarray],
    scores: np.ndarray,
    n_transfers: int,
    t_amounts: np.ndarray,
    max_fee: float,
    max_discount: float,
) -> tuple[pd.DataFrame, Members]:
    """Candidate answers for every transfer with their set features.

    `pairs` needs columns t, open, cp, issue (days), ref_strong (one row per candidate pair); a
    dict of arrays is cheaper than a DataFrame for a small input.
    Returns the option frame (t plus SET_FEATURES) and the pair rows of every option.
    """
    t_all = np.asarray(pairs["t"], dtype=np.int64)
    open_amt = np.asarray(pairs["open"], dtype=np.float64)
    ref = np.asarray(pairs["ref_strong"], dtype=np.float64)
    cp_codes = pd.factorize(np.asarray(pairs["cp"]))[0]
    issue = np.asarray(pairs["issue"], dtype=np.int64)
    t_amounts = np.asarray(t_amounts, dtype=np.float64)
    r = _rank_pairs(t_all, scores, n_transfers)
    m_t, m_kind, m_rows, n_fit = _multi_options(
        r.order, r.bounds, scores, open_amt, ref, cp_codes, issue, t_amounts, max_fee, max_discount
    )
    opt_t, kind, sizes, members = _lay_out(
        n_transfers, t_all[r.singles], r.singles, m_t, m_kind, m_rows
    )
    n_opts, rows = len(opt_t), members.rows
    mem_opt = np.repeat(np.arange(n_opts), sizes)  # the option of each member row

    ll = _log_likelihoods(scores, t_all, opt_t, rows, mem_opt, n_transfers)
    sum_open = np.bincount(mem_opt, weights=open_amt[rows], minlength=n_opts)
    amount = t_amounts[opt_t]
    resid = sum_open - amount
    n_ref_in = np.bincount(mem_opt, weights=ref[rows], minlength=n_opts)
    n_ref_total = np.bincount(t_all, weights=ref, minlength=n_transfers)
    mex, p_out = _best_left_out(r, members, mem_opt, opt_t)
    features = {
        "kind": kind,
        "size": sizes,
        **_member_scores(scores, sizes, members, mem_opt),
        "p_out_max": p_out,
        "p_best": r.best[opt_t],
        "p_second": r.second[opt_t],
        "ll": ll,
        "ll_margin": _likelihood_margin(ll, opt_t, n_transfers),
        "rel_resid": resid / np.maximum(amount, 0.01),
        "abs_resid": np.where(sizes > 0, np.abs(resid), amount),
        "fit": np.where(sizes > 0, fits(sum_open, amount, max_fee, max_discount), 0),
        "n_credit": np.bincount(mem_opt, weights=open_amt[rows] < 0, minlength=n_opts),
        "n_cp": _counterparty_counts(cp_codes, rows, mem_opt, n_opts),
        "n_ref_in": n_ref_in,
        "n_ref_out": n_ref_total[opt_t] - n_ref_in,
        "n_cand": r.counts[opt_t],
        "top1_in": mex > 0,
        "n_fit_subsets": n_fit[opt_t],
        "log_amount": np.log1p(amount),
    }
    return _option_frame(opt_t, features), members


@dataclass(frozen=True)
class _Ranking:
    """The candidate pairs of every transfer ordered by score, best first."""

    order: np.ndarray  # pair rows, by transfer, then score
    bounds: np.ndarray  # where each transfer's rows start in `order` (then the number of pairs)
    counts: np.ndarray  # candidates per transfer
    rank: np.ndarray  # rank of each pair row within its transfer (0: the best)
    sorted_scores: np.ndarray  # the scores in `order`, then a 0 for "no candidate left"
    singles: np.ndarray  # pair rows ranked among the N_SINGLES best of their transfer
    best: np.ndarray  # per transfer, the best score (0 without candidates)
    second: np.ndarray  # per transfer, the second best score (0 without a second candidate)


def _rank_pairs(t_all: np.ndarray, scores: np.ndarray, n_transfers: int) -> _Ranking:
    """Every transfer's candidates ranked by pair score (see `_Ranking`)."""
    n = len(t_all)
    order = np.lexsort((-scores, t_all))
    bounds = np.searchsorted(t_all[order], np.arange(n_transfers + 1))
    counts = np.diff(bounds)
    rank_sorted = np.arange(n) - np.repeat(bounds[:-1], counts)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = rank_sorted
    sorted_scores = np.append(scores[order], 0.0)
    return _Ranking(
        order,
        bounds,
        counts,
        rank,
        sorted_scores,
        singles=order[rank_sorted < N_SINGLES],
        best=np.where(counts > 0, sorted_scores[np.minimum(bounds[:-1], n)], 0.0),
        second=np.where(counts > 1, sorted_scores[np.minimum(bounds[:-1] + 1, n)], 0.0),
    )


def _lay_out(
    n_transfers: int,
    single_t: np.ndarray,
    singles: np.ndarray,
    m_t: list[int],
    m_kind: list[int],
    m_rows: list[np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Members]:
    """All options in one order (the empty one of every transfer, the singles, the multi-invoice
    ones): the transfer, kind and size of each, and their member rows."""
    n_single, n_multi = len(singles), len(m_t)
    n_opts = n_transfers + n_single + n_multi
    opt_t = np.concatenate(
        [np.arange(n_transfers), single_t, np.asarray(m_t, dtype=np.int64)]
    ).astype(np.int64)
    kind = np.concatenate(
        [
            np.full(n_transfers, KIND_EMPTY),
            np.full(n_single, KIND_SINGLE),
            np.asarray(m_kind, dtype=np.int64),
        ]
    )
    sizes = np.concatenate(
        [
            np.zeros(n_transfers, dtype=np.int64),
            np.ones(n_single, dtype=np.int64),
            np.fromiter((len(r) for r in m_rows), np.int64, n_multi),
        ]
    )
    ptr = np.concatenate([[0], np.cumsum(sizes)])
    rows = (
        np.concatenate([singles, *m_rows]).astype(np.int64)
        if n_opts > n_transfers
        else (np.zeros(0, dtype=np.int64))
    )
    return opt_t, kind, sizes, Members(ptr, rows)


def _log_likelihoods(
    scores: np.ndarray,
    t_all: np.ndarray,
    opt_t: np.ndarray,
    rows: np.ndarray,
    mem_opt: np.ndarray,
    n_transfers: int,
) -> np.ndarray:
    """Per option, the log-likelihood of its transfer's candidates being exactly its members."""
    lp, lq = _logit_terms(scores)
    base_ll = np.bincount(t_all, weights=lq, minlength=n_transfers)
    return base_ll[opt_t] + np.bincount(mem_opt, weights=(lp - lq)[rows], minlength=len(opt_t))


def _member_scores(
    scores: np.ndarray, sizes: np.ndarray, members: Members, mem_opt: np.ndarray
) -> dict[str, np.ndarray]:
    """The lowest, mean and highest pair score of each option's members (0 for none)."""
    n_opts = len(sizes)
    p = scores[members.rows]
    p_sum = np.bincount(mem_opt, weights=p, minlength=n_opts)
    p_min = np.zeros(n_opts)
    p_max = np.zeros(n_opts)
    if len(members.rows):
        # Members are stored option after option, so each option's rows are one segment.
        filled = np.flatnonzero(sizes > 0)
        p_min[filled] = np.minimum.reduceat(p, members.ptr[filled])
        p_max[filled] = np.maximum.reduceat(p, members.ptr[filled])
    return {
        "p_min": p_min,
        "p_mean": np.where(sizes > 0, p_sum / np.maximum(sizes, 1), 0.0),
        "p_max": p_max,
    }


def _counterparty_counts(
    cp_codes: np.ndarray, rows: np.ndarray, mem_opt: np.ndarray, n_opts: int
) -> np.ndarray:
    """Distinct counterparties among each option's members."""
    if not len(rows):
        return np.zeros(n_opts)
    width = int(cp_codes.max()) + 1
    distinct = np.unique(mem_opt * width + cp_codes[rows]) // width
    return np.bincount(distinct, minlength=n_opts).astype(np.float64)


def _best_left_out(
    r: _Ranking, members: Members, mem_opt: np.ndarray, opt_t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per option, how many of its transfer's best candidates in a row it holds, and the score
    of the best candidate it leaves out (0 if none is left)."""
    # The best candidate left out of an option is the first rank missing from its members.
    member_rank = r.rank[members.rows]
    by_rank = np.lexsort((member_rank, mem_opt))
    pos = np.arange(len(members.rows)) - members.ptr[mem_opt]
    mex = np.bincount(
        mem_opt, weights=(member_rank[by_rank] == pos).astype(float), minlength=len(opt_t)
    ).astype(np.int64)
    out_idx = np.where(mex < r.counts[opt_t], r.bounds[opt_t] + mex, len(r.rank))
    return mex, r.sorted_scores[out_idx]


def _likelihood_margin(ll: np.ndarray, opt_t: np.ndarray, n_transfers: int) -> np.ndarray:
    """Margin of each option's likelihood over the best other option of the same transfer."""
    n_opts = len(opt_t)
    o_sorted = np.lexsort((-ll, opt_t))
    first = np.searchsorted(opt_t[o_sorted], np.arange(n_transfers))
    best_ll = ll[o_sorted[first]]
    has_second = np.append(first[1:], n_opts) - first > 1
    second_ll = np.where(has_second, ll[o_sorted[np.minimum(first + 1, n_opts - 1)]], -np.inf)
    is_best = np.zeros(n_opts, dtype=bool)
    is_best[o_sorted[first]] = True
    other = np.where(is_best, second_ll[opt_t], best_ll[opt_t])
    return np.clip(np.where(np.isfinite(other), ll - other, 50.0), -50, 50)


def _option_frame(opt_t: np.ndarray, features: dict[str, np.ndarray]) -> pd.DataFrame:
    """The option frame: `t`, then SET_FEATURES in order."""
    # One float block (cheap to build and to hand to the set model) plus the transfer index;
    # filled feature by feature, then handed to pandas as its block without a copy.
    block = np.empty((len(SET_FEATURES), len(opt_t)), dtype=np.float64)
    for k, name in enumerate(SET_FEATURES):
        block[k] = features[name]
    opts = pd.DataFrame(block.T, columns=_FEATURE_COLUMNS, copy=False)
    opts.insert(0, "t", opt_t)
    return opts
