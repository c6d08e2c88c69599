"""Candidate generation by blocking: which invoices a transfer is compared with at all.

Comparing every transfer with every open invoice is quadratic. Instead each transfer is joined
with invoices sharing a reference key, its account (IBAN), a counterparty learned from earlier
labels for its payer account or name, a rare name token, or an amount that fits (equal, or a
little more when fees or a discount were taken off). Every join is an equi-join or a range over
sorted amounts, so the work grows with the number of pairs produced, not with the product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from shared.contract import INVOICE_DIRECTION_FOR
from shared.matching.knowledge import title_key_tokens
from shared.matching.text import (
    KEY_KINDS,
    compact,
    invoice_keys,
    name_tokens,
    normalize_iban,
    normalize_name,
    title_keys,
)

FLAG_COLUMNS = [f"ref_{k}" for k in KEY_KINDS] + [
    "by_iban",
    "by_payer",
    "by_name",
    "by_title_name",
    "by_ref_cp",
    "by_amount",
]


@dataclass(frozen=True)
class BlockingParams:
    """Caps that keep blocking linear; see MatcherConfig for the meaning of each."""

    max_fee: float = 30.0
    max_discount: float = 0.05
    max_key_invoices: int = 40
    max_amount_invoices: int = 25
    max_name_token_cps: int = 5
    max_candidates: int = 60


@dataclass
class Prepared:
    """Transfers and invoices with normalised columns, indexed by position."""

    transfers: pd.DataFrame
    invoices: pd.DataFrame


def _texts(fn, values: pd.Series) -> pd.Series:
    # object dtype even when empty, so string concatenation works on zero rows too
    return pd.Series([fn(v) for v in values], index=values.index, dtype=object)


def prepare(transfers: pd.DataFrame, invoices: pd.DataFrame) -> Prepared:
    """Add the normalised columns blocking and features need; positions become the ids."""
    tr = transfers.reset_index(drop=True).copy()
    inv = invoices.reset_index(drop=True).copy()
    if "open_amount" not in inv.columns:
        inv["open_amount"] = inv["amount"]
    tr["booking_date"] = pd.to_datetime(tr["booking_date"])
    inv["issue_date"] = pd.to_datetime(inv["issue_date"])
    inv["due_date"] = pd.to_datetime(inv["due_date"])
    tr["amount"] = tr["amount"].astype("float64")
    inv["amount"] = inv["amount"].astype("float64")
    inv["open_amount"] = inv["open_amount"].astype("float64")
    inv_dir = tr["direction"].map(INVOICE_DIRECTION_FOR).fillna("?")
    tr["grp"] = (inv_dir.astype(str) + "|" + tr["currency"].astype(str)).astype(object)
    inv["grp"] = (inv["direction"].astype(str) + "|" + inv["currency"].astype(str)).astype(object)
    tr["iban_n"] = _texts(normalize_iban, tr["counterparty_iban"])
    inv["iban_n"] = _texts(normalize_iban, inv["counterparty_iban"])
    tr["name_n"] = _texts(normalize_name, tr["counterparty_name"])
    inv["name_n"] = _texts(normalize_name, inv["counterparty_name"])
    tr["title_c"] = _texts(compact, tr["title"])
    inv["number_c"] = _texts(compact, inv["invoice_number"])
    inv["tax_c"] = _texts(compact, inv["counterparty_tax_id"])
    inv["counterparty_id"] = inv["counterparty_id"].astype(str).astype(object)
    return Prepared(tr, inv)


def _explode(lists: list, ids: np.ndarray, name: str) -> pd.DataFrame:
    lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    flat = [k for x in lists for k in x]
    return pd.DataFrame({name: np.repeat(ids, lengths), "key": np.array(flat, dtype=object)})


def _ref_pairs(p: Prepared, params: BlockingParams) -> pd.DataFrame:
    tr, inv = p.transfers, p.invoices
    ik = _explode([invoice_keys(n) for n in inv["invoice_number"]], inv.index.to_numpy(), "i")
    ik["key"] = inv["grp"].to_numpy()[ik["i"].to_numpy()] + "#" + ik["key"]
    ik = ik.drop_duplicates()
    size = ik.groupby("key")["i"].transform("size")
    ik = ik[size <= params.max_key_invoices]
    tk = _explode([sorted(title_keys(t)) for t in tr["title"]], tr.index.to_numpy(), "t")
    tk["key"] = tr["grp"].to_numpy()[tk["t"].to_numpy()] + "#" + tk["key"]
    m = tk.merge(ik, on="key")
    if m.empty:
        return pd.DataFrame(columns=["t", "i"])
    kind = m["key"].str.split("#", n=1).str[1].str[0]
    for k in KEY_KINDS:
        m[f"ref_{k}"] = (kind == k).astype(np.uint8)
    return m.groupby(["t", "i"], as_index=False)[[f"ref_{k}" for k in KEY_KINDS]].max()


def _equi_pairs(tr_keys: pd.DataFrame, inv_keys: pd.DataFrame, flag: str) -> pd.DataFrame:
    m = tr_keys.merge(inv_keys, on="key")[["t", "i"]].drop_duplicates()
    m[flag] = np.uint8(1)
    return m


def _iban_pairs(p: Prepared) -> pd.DataFrame:
    tr, inv = p.transfers, p.invoices
    tk = pd.DataFrame({"t": tr.index, "key": tr["grp"] + "#" + tr["iban_n"]})[tr["iban_n"] != ""]
    ik = pd.DataFrame({"i": inv.index, "key": inv["grp"] + "#" + inv["iban_n"]})[
        inv["iban_n"] != ""
    ]
    return _equi_pairs(tk, ik, "by_iban")


def _cp_invoices(inv: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"i": inv.index, "key": inv["grp"] + "#" + inv["counterparty_id"]})


def _payer_pairs(p: Prepared, payer: pd.DataFrame) -> pd.DataFrame:
    tr, inv = p.transfers, p.invoices
    if payer is None or payer.empty:
        return pd.DataFrame(columns=["t", "i", "by_payer"])
    tk = _explode([title_key_tokens(v) for v in tr["title"]], tr.index.to_numpy(), "t")
    keys = pd.concat(
        [
            pd.DataFrame({"t": tr.index, "payer_key": "I:" + tr["iban_n"]})[tr["iban_n"] != ""],
            pd.DataFrame({"t": tr.index, "payer_key": "N:" + tr["name_n"]})[tr["name_n"] != ""],
            pd.DataFrame({"t": tk["t"], "payer_key": "T:" + tk["key"].astype(str)}),
        ]
    )
    tcp = keys.merge(payer[["payer_key", "counterparty_id"]], on="payer_key")
    tcp["key"] = tr["grp"].to_numpy()[tcp["t"].to_numpy()] + "#" + tcp["counterparty_id"]
    return _equi_pairs(tcp[["t", "key"]].drop_duplicates(), _cp_invoices(inv), "by_payer")


def _rare_name_tokens(inv: pd.DataFrame, params: BlockingParams) -> pd.DataFrame:
    cps = inv.drop_duplicates("counterparty_id")
    ck = _explode(
        [[t for t in set(name_tokens(n)) if len(t) >= 3] for n in cps["counterparty_name"]],
        cps["counterparty_id"].to_numpy(),
        "cp",
    )
    df = ck.groupby("key")["cp"].transform("size")
    return ck[df <= params.max_name_token_cps]


def _token_cp_pairs(
    p: Prepared, texts: pd.Series, rare: pd.DataFrame, flag: str, min_len: int
) -> pd.DataFrame:
    tr, inv = p.transfers, p.invoices
    tk = _explode(
        [[t for t in set(name_tokens(n)) if len(t) >= min_len] for n in texts],
        tr.index.to_numpy(),
        "t",
    )
    tcp = tk.merge(rare, on="key")[["t", "cp"]].drop_duplicates()
    tcp["key"] = tr["grp"].to_numpy()[tcp["t"].to_numpy()] + "#" + tcp["cp"]
    return _equi_pairs(tcp[["t", "key"]], _cp_invoices(inv), flag)


def _name_pairs(p: Prepared, params: BlockingParams) -> list[pd.DataFrame]:
    """Rare words of counterparty names found in the statement name, or in the title (a factor
    or parent often names the debtor there)."""
    rare = _rare_name_tokens(p.invoices, params)
    return [
        _token_cp_pairs(p, p.transfers["counterparty_name"], rare, "by_name", 3),
        _token_cp_pairs(p, p.transfers["title"], rare, "by_title_name", 4),
    ]


def _ref_cp_pairs(p: Prepared, refs: pd.DataFrame) -> pd.DataFrame:
    """Other open invoices of a counterparty whose invoice the title references: credit notes
    netted in and references cut off by the title length limit are rarely written out."""
    if refs.empty:
        return pd.DataFrame(columns=["t", "i", "by_ref_cp"])
    strong = refs[(refs[["ref_C", "ref_D", "ref_Z"]].max(axis=1) > 0)]
    inv, tr = p.invoices, p.transfers
    tcp = pd.DataFrame(
        {
            "t": strong["t"].to_numpy(),
            "key": tr["grp"].to_numpy()[strong["t"].to_numpy()]
            + "#"
            + inv["counterparty_id"].to_numpy(dtype=object)[strong["i"].to_numpy()],
        }
    ).drop_duplicates()
    return _equi_pairs(tcp, _cp_invoices(inv), "by_ref_cp")


def _ranges_to_pairs(t: np.ndarray, lo: np.ndarray, hi: np.ndarray, order: np.ndarray):
    counts = np.maximum(hi - lo, 0)
    total = int(counts.sum())
    t_rep = np.repeat(t, counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    pos = np.arange(total) - starts + np.repeat(lo, counts)
    return t_rep, order[pos]


def _amount_pairs(p: Prepared, params: BlockingParams) -> pd.DataFrame:
    tr, inv = p.transfers, p.invoices
    ts, is_ = [], []
    for grp, tsub in tr.groupby("grp", sort=False):
        isub = inv[inv["grp"] == grp]
        if isub.empty:
            continue
        order_local = np.argsort(isub["open_amount"].to_numpy(), kind="stable")
        sorted_amt = isub["open_amount"].to_numpy()[order_local]
        order = isub.index.to_numpy()[order_local]
        a = tsub["amount"].to_numpy()
        lo_eq = np.searchsorted(sorted_amt, a - 0.005, "left")
        hi_eq = np.searchsorted(sorted_amt, a + 0.005, "right")
        hi_tol = np.searchsorted(
            sorted_amt, a * (1 + params.max_discount) + params.max_fee + 0.005, "right"
        )
        use_tol = (hi_tol - lo_eq) <= params.max_amount_invoices
        use_eq = ~use_tol & ((hi_eq - lo_eq) <= params.max_amount_invoices)
        hi = np.where(use_tol, hi_tol, np.where(use_eq, hi_eq, lo_eq))
        t_rep, i_rep = _ranges_to_pairs(tsub.index.to_numpy(), lo_eq, hi, order)
        ts.append(t_rep)
        is_.append(i_rep)
    if not ts:
        return pd.DataFrame(columns=["t", "i", "by_amount"])
    out = pd.DataFrame({"t": np.concatenate(ts), "i": np.concatenate(is_)})
    out["by_amount"] = np.uint8(1)
    return out


def candidate_pairs(
    p: Prepared, payer: pd.DataFrame | None, params: BlockingParams
) -> pd.DataFrame:
    """All blocked (transfer, invoice) pairs with one 0/1 column per blocking rule.

    A transfer keeps at most `max_candidates` pairs, reference hits first, then account or
    learned-payer hits, then the invoices whose open amount is closest to the transfer amount.
    """
    refs = _ref_pairs(p, params)
    parts = [
        refs,
        _ref_cp_pairs(p, refs),
        _iban_pairs(p),
        _payer_pairs(p, payer if payer is not None else pd.DataFrame()),
        *_name_pairs(p, params),
        _amount_pairs(p, params),
    ]
    parts = [x for x in parts if len(x)]
    if not parts:
        out = pd.DataFrame({"t": pd.Series(dtype=np.int64), "i": pd.Series(dtype=np.int64)})
        for c in FLAG_COLUMNS:
            out[c] = pd.Series(dtype=np.uint8)
        return out
    allp = pd.concat(parts, ignore_index=True)
    for c in FLAG_COLUMNS:
        allp[c] = allp[c].fillna(0).astype(np.uint8) if c in allp.columns else np.uint8(0)
    allp["t"] = allp["t"].astype(np.int64)
    allp["i"] = allp["i"].astype(np.int64)
    pairs = allp.groupby(["t", "i"], as_index=False, sort=False)[FLAG_COLUMNS].max()
    # Same-group constraint (direction and currency) holds for every rule above except the
    # learned-payer and name joins, which already include the group in their key.
    t_amt = p.transfers["amount"].to_numpy()[pairs["t"].to_numpy()]
    o_amt = p.invoices["open_amount"].to_numpy()[pairs["i"].to_numpy()]
    strong_ref = pairs[["ref_C", "ref_D", "ref_Z"]].max(axis=1).to_numpy()
    # Specific evidence of who is paid (own account, a referenced invoice's counterparty, a rare
    # company word in the title) outranks weak evidence (a payer that paid for many others
    # before, e.g. a factoring house; a word of the statement name; the bare sequence number).
    specific = pairs[["by_iban", "by_ref_cp", "by_title_name"]].max(axis=1).to_numpy()
    weak = pairs[["by_payer", "by_name"]].max(axis=1).to_numpy()
    priority = (
        8 * strong_ref.astype(np.int64)
        + 4 * specific.astype(np.int64)
        + 2 * weak.astype(np.int64)
        + pairs["ref_S"].to_numpy().astype(np.int64)
        + pairs["by_amount"].to_numpy().astype(np.int64)
    )
    closeness = np.abs(np.log(np.abs(o_amt) + 0.01) - np.log(t_amt + 0.01))
    pairs = pairs.assign(_p=-priority, _c=closeness).sort_values(["t", "_p", "_c"])
    rank = pairs.groupby("t").cumcount()
    pairs = pairs[rank < params.max_candidates].drop(columns=["_p", "_c"])
    return pairs.sort_values(["t", "i"]).reset_index(drop=True)
