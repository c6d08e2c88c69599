"""Pair features: how well one open invoice fits one transfer.

Everything is computed column-wise over the candidate pairs (numpy, pandas group-bys and
rapidfuzz's parallel `cpdist`), so scoring 100k transfers costs seconds, not hours. The features
are the ones a finance clerk uses: the reference in the title (typo tolerant), the amount
(equal, short by a fee or discount, a fraction, part of a sum), who paid (account, name, and which
counterparty that payer paid for before), dates, and which of several same-amount invoices of a
counterparty is the oldest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process

from shared.matching.candidates import FLAG_COLUMNS, BlockingParams, Prepared
from shared.matching.knowledge import title_key_tokens
from shared.matching.subsets import MAX_POOL, explaining_subsets
from shared.matching.text import digits_only

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


def _group_rank(keys: list[np.ndarray], order_value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank (0-based, ascending `order_value`) and size of each row within its key group."""
    df = pd.DataFrame({f"k{j}": k for j, k in enumerate(keys)})
    df["v"] = order_value
    g = df.groupby([f"k{j}" for j in range(len(keys))], sort=False)
    rank = g["v"].rank(method="first").to_numpy() - 1
    size = g["v"].transform("size").to_numpy()
    return rank, size


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
    """
    n = len(t)
    in_exact = np.zeros(n, dtype=np.float32)
    in_tol = np.zeros(n, dtype=np.float32)
    n_sub = np.zeros(n, dtype=np.float32)
    if n == 0:
        return in_exact, in_tol, n_sub
    cp_codes = pd.factorize(cp)[0]
    order = np.lexsort((issue, cp_codes, t))
    ts, cs = t[order], cp_codes[order]
    brk = np.flatnonzero((np.diff(ts) != 0) | (np.diff(cs) != 0)) + 1
    starts = np.concatenate(([0], brk))
    ends = np.concatenate((brk, [n]))
    for s, e in zip(starts, ends, strict=True):
        if e - s < 2:
            continue
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


def _payer_share(
    keys: np.ndarray, cps: np.ndarray, payer: pd.DataFrame | None
) -> tuple[np.ndarray, np.ndarray]:
    n = len(keys)
    if payer is None or payer.empty or n == 0:
        return np.zeros(n, dtype=np.float32), np.zeros(n, dtype=np.float32)
    left = pd.DataFrame({"payer_key": keys, "counterparty_id": cps})
    m = left.merge(payer, on=["payer_key", "counterparty_id"], how="left")
    totals = payer.drop_duplicates("payer_key").set_index("payer_key")["n_key"]
    n_key = left["payer_key"].map(totals).fillna(0.0).to_numpy()
    hits = m["n"].fillna(0.0).to_numpy()
    share = np.where(n_key > 0, hits / np.maximum(n_key, 1.0), -1.0)
    return share.astype(np.float32), n_key.astype(np.float32)


def _habits(cp: np.ndarray, habits: pd.DataFrame | None) -> list[np.ndarray]:
    n = len(cp)
    if habits is None or habits.empty or n == 0:
        return [np.zeros(n, np.float32), np.full(n, -1.0, np.float32), np.full(n, -1.0, np.float32)]
    h = habits.set_index("counterparty_id")
    key = pd.Series(cp)
    return [
        key.map(h["habit_n"]).fillna(0.0).to_numpy(np.float32),
        key.map(h["oldest_share"]).fillna(-1.0).to_numpy(np.float32),
        key.map(h["newest_share"]).fillna(-1.0).to_numpy(np.float32),
    ]


def _title_key_share(
    tr: pd.DataFrame, t: np.ndarray, cp: np.ndarray, payer: pd.DataFrame | None
) -> np.ndarray:
    """Best share with which a learned title token of the transfer points to the pair's cp."""
    out = np.zeros(len(t), dtype=np.float32)
    if payer is None or payer.empty or len(t) == 0:
        return out
    learned = payer[payer["payer_key"].str.startswith("T:")]
    if learned.empty:
        return out
    toks = [title_key_tokens(v) for v in tr["title"]]
    lengths = np.fromiter((len(x) for x in toks), np.int64, len(toks))
    tk = pd.DataFrame(
        {
            "t": np.repeat(np.arange(len(toks)), lengths),
            "payer_key": np.array(["T:" + k for x in toks for k in x], dtype=object),
        }
    )
    hits = tk.merge(learned, on="payer_key")
    if hits.empty:
        return out
    hits["share"] = hits["n"] / hits["n_key"]
    best = hits.groupby(["t", "counterparty_id"])["share"].max()
    key = pd.MultiIndex.from_arrays([t, cp])
    return best.reindex(key).fillna(0.0).to_numpy(np.float32)


def pair_features(
    p: Prepared,
    pairs: pd.DataFrame,
    payer: pd.DataFrame | None,
    params: BlockingParams,
    habits: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The feature matrix (float32 columns named in FEATURES), one row per candidate pair."""
    tr, inv = p.transfers, p.invoices
    t = pairs["t"].to_numpy(np.int64)
    i = pairs["i"].to_numpy(np.int64)
    f: dict[str, np.ndarray] = {c: pairs[c].to_numpy(np.float32) for c in FLAG_COLUMNS}
    ref_strong = np.maximum.reduce([f["ref_C"], f["ref_D"], f["ref_Z"]])
    f["ref_strong"] = ref_strong

    title_c = tr["title_c"].to_numpy(dtype=object)[t]
    number_c = inv["number_c"].to_numpy(dtype=object)[i]
    if len(t):
        f["ref_partial"] = (
            process.cpdist(list(number_c), list(title_c), scorer=fuzz.partial_ratio, workers=-1)
            / 100.0
        ).astype(np.float32)
        t_digits = np.array([digits_only(s) for s in tr["title_c"]], dtype=object)[t]
        i_digits = np.array([digits_only(s) for s in inv["number_c"]], dtype=object)[i]
        f["ref_digits_partial"] = (
            process.cpdist(list(i_digits), list(t_digits), scorer=fuzz.partial_ratio, workers=-1)
            / 100.0
        ).astype(np.float32)
        f["name_sim"] = (
            process.cpdist(
                list(tr["name_n"].to_numpy(dtype=object)[t]),
                list(inv["name_n"].to_numpy(dtype=object)[i]),
                scorer=fuzz.token_set_ratio,
                workers=-1,
            )
            / 100.0
        ).astype(np.float32)
        inv_name_c = np.array([s.replace(" ", "") for s in inv["name_n"]], dtype=object)[i]
        f["name_in_title"] = (
            process.cpdist(list(inv_name_c), list(title_c), scorer=fuzz.partial_ratio, workers=-1)
            / 100.0
        ).astype(np.float32)
    else:
        for c in ("ref_partial", "ref_digits_partial", "name_sim", "name_in_title"):
            f[c] = np.zeros(0, dtype=np.float32)
    f["number_len"] = np.fromiter((len(s) for s in number_c), np.float32, len(t))
    f["title_len"] = np.fromiter((len(s) for s in title_c), np.float32, len(t))
    tax_c = inv["tax_c"].to_numpy(dtype=object)[i]
    f["tax_in_title"] = np.fromiter(
        (len(x) >= 5 and x in y for x, y in zip(tax_c, title_c, strict=True)), np.float32, len(t)
    )

    t_iban = tr["iban_n"].to_numpy(dtype=object)[t]
    i_iban = inv["iban_n"].to_numpy(dtype=object)[i]
    f["iban_eq"] = ((t_iban == i_iban) & (t_iban != "")).astype(np.float32)
    cp = inv["counterparty_id"].to_numpy(dtype=object)[i]
    f["payer_iban_share"], f["payer_iban_n"] = _payer_share(
        np.where(t_iban != "", "I:" + t_iban.astype(str), ""), cp, payer
    )
    t_name = tr["name_n"].to_numpy(dtype=object)[t]
    f["payer_name_share"], f["payer_name_n"] = _payer_share(
        np.where(t_name != "", "N:" + t_name.astype(str), ""), cp, payer
    )

    f["payer_title_share"] = _title_key_share(tr, t, cp, payer)

    ta = tr["amount"].to_numpy(np.float64)[t]
    oa = inv["open_amount"].to_numpy(np.float64)[i]
    ia = inv["amount"].to_numpy(np.float64)[i]
    diff = oa - ta
    f["log_amount"] = np.log1p(ta).astype(np.float32)
    f["log_open"] = (np.sign(oa) * np.log1p(np.abs(oa))).astype(np.float32)
    f["diff"] = diff.astype(np.float32)
    f["rel_diff"] = (diff / np.maximum(np.abs(oa), 0.01)).astype(np.float32)
    f["eq_open"] = (np.abs(diff) < 0.005).astype(np.float32)
    f["eq_amount"] = (np.abs(ia - ta) < 0.005).astype(np.float32)
    f["frac"] = np.clip(ta / np.where(np.abs(oa) < 0.01, 0.01, oa), -10, 10).astype(np.float32)
    f["is_credit"] = (oa < 0).astype(np.float32)
    f["partly_paid"] = (np.abs(oa - ia) >= 0.005).astype(np.float32)

    issue = inv["issue_date"].to_numpy("datetime64[D]").astype(np.int64)[i]
    due = inv["due_date"].to_numpy("datetime64[D]").astype(np.int64)[i]
    booking = tr["booking_date"].to_numpy("datetime64[D]").astype(np.int64)[t]
    f["days_since_issue"] = (booking - issue).astype(np.float32)
    f["days_past_due"] = (booking - due).astype(np.float32)

    f["in_exact_subset"], f["in_tol_subset"], f["n_subsets"] = _subset_features(
        t, cp, issue, oa, ta, params
    )

    n_strong = pd.Series(ref_strong).groupby(t).transform("sum").to_numpy()
    f["n_strong_ref_t"] = n_strong.astype(np.float32)
    f["strong_ref_unique"] = ((ref_strong > 0) & (n_strong == 1)).astype(np.float32)
    f["n_eq_open_t"] = pd.Series(f["eq_open"]).groupby(t).transform("sum").to_numpy(np.float32)
    cents = np.round(oa * 100).astype(np.int64)
    # Several open invoices of one counterparty with the same amount (subscriptions): which is
    # oldest is what decides, so rank by issue date within (transfer, counterparty, amount).
    rank_old, size_same = _group_rank([t, cp, cents], issue.astype(np.float64))
    f["same_amount_rank_old"] = rank_old.astype(np.float32)
    f["same_amount_rank_new"] = (size_same - 1 - rank_old).astype(np.float32)
    f["n_same_amount_cp"] = size_same.astype(np.float32)
    age_rank, n_cp_cand = _group_rank([t, cp], issue.astype(np.float64))
    f["age_rank_cp"] = age_rank.astype(np.float32)
    f["n_cand_cp"] = n_cp_cand.astype(np.float32)
    f["cp_habit_n"], f["cp_oldest_share"], f["cp_newest_share"] = _habits(cp, habits)
    tser = pd.Series(t)
    f["n_cand_t"] = tser.groupby(t).transform("size").to_numpy(np.float32)
    f["n_cp_t"] = (
        pd.DataFrame({"t": t, "cp": cp}).groupby("t")["cp"].transform("nunique").to_numpy()
    ).astype(np.float32)
    return pd.DataFrame({c: np.asarray(f[c], dtype=np.float32) for c in FEATURES})
