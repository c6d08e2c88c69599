"""Candidate generation by blocking: which invoices a transfer is compared with at all.

Comparing every transfer with every open invoice is quadratic. Instead each transfer is joined
with invoices sharing a reference key, its account (IBAN), a counterparty learned from earlier
labels for its payer account or name, a rare name token, or an amount that fits (equal, or a
little more when fees or a discount were taken off). Every join is a hash lookup of the keys one
side has, or a range over sorted amounts, so the work grows with the number of pairs produced,
not with the product.

The joins map strings to integer codes with plain dicts and expand matches with numpy. A request
of one transfer and fifty invoices is dominated by per-call overhead, so nothing here goes
through pandas merges or group-bys, and large months stay linear.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cashmatch.domain.matching.codes import Buckets, encode, expand, lookup
from cashmatch.domain.matching.indexes import PayerIndex, payer_index
from cashmatch.domain.matching.prepared import Prepared
from cashmatch.domain.matching.text import KEY_KINDS, invoice_keys, name_tokens, title_keys

FLAG_COLUMNS = [f"ref_{k}" for k in KEY_KINDS] + [
    "ref_RF",
    "by_tax",
    "by_iban",
    "by_payer",
    "by_name",
    "by_title_name",
    "by_ref_cp",
    "by_amount",
]
# Each blocking rule is one bit of a pair's flags while pairs are collected.
_BIT = {c: 1 << k for k, c in enumerate(FLAG_COLUMNS)}
_KIND_BIT = {k: _BIT[f"ref_{k}"] for k in KEY_KINDS}
_STRONG_REF = _BIT["ref_C"] | _BIT["ref_D"] | _BIT["ref_Z"]
_SPECIFIC = _BIT["by_iban"] | _BIT["by_ref_cp"] | _BIT["by_title_name"] | _BIT["by_tax"]
# A creditor reference with valid check digits whose body is the invoice number is as strong
# as the whole number written out: it counts as that too (ref_C), so everything reading strong
# references (options, caps, the referenced invoice's counterparty) reads it as one.
_RF_BITS = _BIT["ref_RF"] | _BIT["ref_C"]
_WEAK = _BIT["by_payer"] | _BIT["by_name"]


@dataclass(frozen=True)
class BlockingParams:
    """Caps that keep blocking linear; see MatcherConfig for the meaning of each."""

    max_fee: float = 30.0
    max_discount: float = 0.05
    max_key_invoices: int = 40
    max_amount_invoices: int = 25
    max_name_token_cps: int = 5
    max_candidates: int = 60


@functools.lru_cache(maxsize=1 << 16, typed=True)
def _invoice_keys(number: object) -> tuple[str, ...]:
    return tuple(invoice_keys(number))


@functools.lru_cache(maxsize=1 << 16, typed=True)
def _name_words(name: object, min_len: int) -> tuple[str, ...]:
    # Distinct words of a name without legal forms, in order of appearance.
    return tuple(dict.fromkeys(w for w in name_tokens(name) if len(w) >= min_len))


# --------------------------------------------------------------------------- blocking rules
# Each rule returns (t, i, bits): one row per hit, duplicates allowed.
_Hits = tuple[np.ndarray, np.ndarray, np.ndarray]


def _no_hits() -> _Hits:
    empty = np.zeros(0, dtype=np.int64)
    return empty, empty, empty


def _ref_hits(p: Prepared, params: BlockingParams) -> _Hits:
    """Reference keys of the title equal to keys of an invoice number (same group)."""
    vocab: dict = {}
    i_rows: list[int] = []
    i_keys: list[tuple[int, str]] = []
    for i, (g, number) in enumerate(zip(p.i_grp.tolist(), p.i_number, strict=True)):
        for key in _invoice_keys(number):
            i_rows.append(i)
            i_keys.append((g, key))
    codes = encode(i_keys, vocab)
    buckets = Buckets(codes, len(vocab))
    t_rows: list[int] = []
    t_keys: list[tuple[int, str]] = []
    t_bits: list[int] = []
    for t, (g, remittance) in enumerate(zip(p.t_grp.tolist(), p.t_remittance, strict=True)):
        # Keys from the fields that carry references only (the whole title when it is free).
        for key in title_keys(remittance.reference_text):
            t_rows.append(t)
            t_keys.append((g, key))
            t_bits.append(_KIND_BIT[key[0]])
        for body in remittance.rf:
            t_rows.append(t)
            t_keys.append((g, "C:" + body))
            t_bits.append(_RF_BITS)
    t_codes = lookup(t_keys, vocab)
    # A key shared by too many invoices (a bare "2024", a common sequence number) says nothing.
    t_codes[buckets.sizes(t_codes) > params.max_key_invoices] = -1
    hit, rows = buckets.expand(np.arange(len(t_rows)), t_codes)
    kind_bit = np.asarray(t_bits, dtype=np.int64)[hit]
    t, i = np.asarray(t_rows, dtype=np.int64)[hit], np.asarray(i_rows, dtype=np.int64)[rows]
    order = np.lexsort((i, t))
    return t[order], i[order], kind_bit[order]


def _first_occurrences(codes: np.ndarray) -> np.ndarray:
    """Distinct codes in the order of their first occurrence."""
    _, first = np.unique(codes, return_index=True)
    return codes[np.sort(first)]


def _ref_cp_hits(p: Prepared, refs: _Hits) -> _Hits:
    """Other open invoices of a counterparty whose invoice the title references: credit notes
    netted in and references cut off by the title length limit are rarely written out."""
    t, i, bits = refs
    strong = (bits & _STRONG_REF) != 0
    if not strong.any():
        return _no_hits()
    cpg = p.invoice_counterparty_group(i[strong])
    n_cpg = int(cpg.max()) + 1
    query = _first_occurrences(t[strong] * n_cpg + cpg)  # each (transfer, counterparty) once
    ts, rows = p.invoices_of_group(query // n_cpg, query % n_cpg)
    return ts, rows, np.full(len(ts), _BIT["by_ref_cp"], dtype=np.int64)


def _tax_hits(p: Prepared) -> _Hits:
    """The split payment's /IDC/ tax id equals the invoice's counterparty tax id (same group).

    /IDC/ names the invoice's issuer: the supplier when we pay, ourselves when a customer pays
    us (then it equals no counterparty's id and finds nothing)."""
    ts = [t for t, r in enumerate(p.t_remittance) if len(r.tax_id) >= 5]
    if not ts:
        return _no_hits()
    vocab: dict = {}
    has = np.flatnonzero(p.i_tax_len >= 5)
    codes = encode(zip(p.i_grp[has].tolist(), p.i_tax_c[has], strict=True), vocab)
    buckets = Buckets(codes, len(vocab))
    t_arr = np.asarray(ts, dtype=np.int64)
    keys = lookup(
        zip(p.t_grp[t_arr].tolist(), [p.t_remittance[t].tax_id for t in ts], strict=True), vocab
    )
    t, rows = buckets.expand(t_arr, keys)
    return t, has[rows], np.full(len(t), _BIT["by_tax"], dtype=np.int64)


def _iban_hits(p: Prepared) -> _Hits:
    """The transfer's account equals the invoice's (same group)."""
    vocab: dict = {}
    has = np.flatnonzero(p.i_iban != "")
    codes = encode(zip(p.i_grp[has].tolist(), p.i_iban[has], strict=True), vocab)
    buckets = Buckets(codes, len(vocab))
    ts = np.flatnonzero(p.t_iban != "")
    t, rows = buckets.expand(
        ts, lookup(zip(p.t_grp[ts].tolist(), p.t_iban[ts], strict=True), vocab)
    )
    return t, has[rows], np.full(len(t), _BIT["by_iban"], dtype=np.int64)


def _counterparty_hits(p: Prepared, t: np.ndarray, cp_ids: Iterable, bit: int) -> _Hits:
    """Every invoice of the named counterparties, in the group each transfer pays."""
    cp = lookup(cp_ids, p.cp_codes)
    known = cp >= 0
    if not known.any():
        return _no_hits()
    t, cp = t[known], cp[known]
    n_cp = len(p.cp_codes)
    query = _first_occurrences(t * n_cp + cp)
    ts, rows = p.counterparty_invoices(query // n_cp, query % n_cp)
    return ts, rows, np.full(len(ts), bit, dtype=np.int64)


def _payer_hits(p: Prepared, payer: PayerIndex) -> _Hits:
    """Counterparties earlier labels tie to the payer's account, name or a title token."""
    if payer.empty:
        return _no_hits()
    ts, keys = p.t_payer_keys
    t, entries = payer.entries(ts, keys)
    return _counterparty_hits(p, t, payer.cps[entries], _BIT["by_payer"])


def _rare_name_tokens(p: Prepared, max_cps: int) -> dict[str, list[str]]:
    """Words (3+ letters) of counterparty names shared by at most `max_cps` counterparties."""
    seen: set[str] = set()
    by_token: dict[str, list[str]] = {}
    for cp, name in zip(p.i_cp_id, p.i_cp_name, strict=True):
        if cp in seen:  # the first invoice's spelling of a counterparty's name stands for it
            continue
        seen.add(cp)
        for tok in _name_words(name, 3):
            by_token.setdefault(tok, []).append(cp)
    return {tok: cps for tok, cps in by_token.items() if len(cps) <= max_cps}


def _token_hits(p: Prepared, texts: np.ndarray, rare: dict, min_len: int, bit: int) -> _Hits:
    ts: list[int] = []
    cps: list[str] = []
    for t, text in enumerate(texts):
        # Words in the order they appear (a set's order would change with the hash seed).
        for tok in _name_words(text, min_len):
            found = rare.get(tok)
            if found:
                ts.extend([t] * len(found))
                cps.extend(found)
    return _counterparty_hits(p, np.asarray(ts, dtype=np.int64), cps, bit)


def _name_hits(p: Prepared, params: BlockingParams) -> list[_Hits]:
    """Rare words of counterparty names found in the statement name, or in the title (a factor
    or parent often names the debtor there)."""
    rare = _rare_name_tokens(p, params.max_name_token_cps)
    if not rare:
        return []
    return [
        _token_hits(p, p.t_cp_name, rare, 3, _BIT["by_name"]),
        _token_hits(p, p.t_title, rare, 4, _BIT["by_title_name"]),
    ]


def _amount_hits(p: Prepared, params: BlockingParams) -> _Hits:
    """Open amounts equal to the transfer's, or a little more (fee, discount), same group."""
    ts, is_ = [], []
    for g in np.unique(p.t_grp):
        isub = np.flatnonzero(p.i_grp == g)
        if len(isub) == 0:
            continue
        tsub = np.flatnonzero(p.t_grp == g)
        order_local = np.argsort(p.i_open[isub], kind="stable")
        sorted_amt = p.i_open[isub][order_local]
        order = isub[order_local]
        a = p.t_amount[tsub]
        lo_eq = np.searchsorted(sorted_amt, a - 0.005, "left")
        hi_eq = np.searchsorted(sorted_amt, a + 0.005, "right")
        hi_tol = np.searchsorted(
            sorted_amt, a * (1 + params.max_discount) + params.max_fee + 0.005, "right"
        )
        use_tol = (hi_tol - lo_eq) <= params.max_amount_invoices
        use_eq = ~use_tol & ((hi_eq - lo_eq) <= params.max_amount_invoices)
        hi = np.where(use_tol, hi_tol, np.where(use_eq, hi_eq, lo_eq))
        t_rep, pos = expand(tsub, lo_eq, hi)
        ts.append(t_rep)
        is_.append(order[pos])
    if not ts:
        return _no_hits()
    t = np.concatenate(ts)
    return t, np.concatenate(is_), np.full(len(t), _BIT["by_amount"], dtype=np.int64)


def _hits_frame(t: np.ndarray, i: np.ndarray, bits: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """One row per distinct (t, i), sorted, with a 0/1 column for each named rule."""
    t, i, flags, _ = _merge_hits(t, i, bits)
    cols: dict[str, np.ndarray] = {"t": t, "i": i}
    for c in columns:
        cols[c] = ((flags & _BIT[c]) != 0).astype(np.uint8)
    return pd.DataFrame(cols)


def _merge_hits(
    t: np.ndarray, i: np.ndarray, bits: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (t, i) sorted by t then i, the union of their rules' bits, and the position of
    each pair's first hit."""
    if len(t) == 0:
        return (*_no_hits(), np.zeros(0, dtype=np.int64))
    n_i = int(i.max()) + 1
    code, first, inverse = np.unique(t * n_i + i, return_index=True, return_inverse=True)
    flags = np.zeros(len(code), dtype=np.int64)
    np.bitwise_or.at(flags, inverse, bits)
    return code // n_i, code % n_i, flags, first


def ref_pairs(p: Prepared, params: BlockingParams) -> pd.DataFrame:
    """Reference-key pairs (t, i, ref_C .. ref_S), sorted; what the rules baseline uses."""
    return _hits_frame(*_ref_hits(p, params), [f"ref_{k}" for k in KEY_KINDS])


def iban_pairs(p: Prepared) -> pd.DataFrame:
    """Same-account pairs (t, i, by_iban), sorted; what the rules baseline uses."""
    return _hits_frame(*_iban_hits(p), ["by_iban"])


def _within_cap(
    p: Prepared, t: np.ndarray, i: np.ndarray, flags: np.ndarray, found: np.ndarray, cap: int
) -> np.ndarray | slice:
    """Which pairs survive the per-transfer cap: strongest evidence first, then closest amount.

    Ties (same evidence, same amount) go to the pair found first (`found`: rules in the order
    of `candidate_pairs`, each listing its hits per transfer in a fixed order), so the same
    input always gives the same pairs.
    """
    if len(t) == 0 or np.bincount(t).max() <= cap:
        return slice(None)
    # Specific evidence of who is paid (own account, a referenced invoice's counterparty, a rare
    # company word in the title) outranks weak evidence (a payer that paid for many others
    # before, e.g. a factoring house; a word of the statement name; the bare sequence number).
    priority = (
        8 * ((flags & _STRONG_REF) != 0)
        + 4 * ((flags & _SPECIFIC) != 0)
        + 2 * ((flags & _WEAK) != 0)
        + ((flags & _BIT["ref_S"]) != 0)
        + ((flags & _BIT["by_amount"]) != 0)
    ).astype(np.int64)
    closeness = np.abs(np.log(np.abs(p.i_open[i]) + 0.01) - np.log(p.t_amount[t] + 0.01))
    # Within equal evidence, a collective payment's invoices are each much smaller than the
    # amount: closeness would keep the counterparty's largest invoices and drop what it pays.
    # So: invoices near the amount first (a single payment), then the smaller ones oldest
    # first (customers pay their oldest first), then larger ones; never-yet-issued ones last.
    ratio = np.abs(p.i_open[i]) / np.maximum(p.t_amount[t], 0.01)
    age = (p.t_day[t] - p.i_issue[i]).astype(np.float64)
    band = np.where(closeness < 0.1, 0, np.where(ratio < 1, 1, 2)) + 3 * (age < 0)
    within = np.where(band % 3 == 1, -age, closeness)
    order = np.lexsort((found, within, band, -priority, t))
    t_sorted = t[order]
    first = np.searchsorted(t_sorted, t_sorted, "left")
    keep = np.zeros(len(t), dtype=bool)
    keep[order[np.arange(len(t)) - first < cap]] = True
    return keep


def candidate_pairs(
    p: Prepared, payer: pd.DataFrame | PayerIndex | None, params: BlockingParams
) -> pd.DataFrame:
    """All blocked (transfer, invoice) pairs with one 0/1 column per blocking rule.

    Sorted by transfer and invoice position. A transfer keeps at most `max_candidates` pairs,
    reference hits first, then account or learned-payer hits, then the invoices whose open
    amount is closest to the transfer amount.
    """
    return pd.DataFrame(candidate_columns(p, payer, params))


def candidate_columns(
    p: Prepared, payer: pd.DataFrame | PayerIndex | None, params: BlockingParams
) -> dict[str, np.ndarray]:
    """`candidate_pairs` as named arrays ("t", "i", then FLAG_COLUMNS), for callers that stack
    many requests' pairs: a frame per request costs more than blocking one small request."""
    refs = _ref_hits(p, params)
    parts = [
        refs,
        _ref_cp_hits(p, refs),
        _tax_hits(p),
        _iban_hits(p),
        _payer_hits(p, payer_index(payer)),
        *_name_hits(p, params),
        _amount_hits(p, params),
    ]
    t, i, flags, found = _merge_hits(*(np.concatenate(c) for c in zip(*parts, strict=True)))
    keep = _within_cap(p, t, i, flags, found, params.max_candidates)
    t, i, flags = t[keep], i[keep], flags[keep]
    cols: dict[str, np.ndarray] = {"t": t.astype(np.int64), "i": i.astype(np.int64)}
    for c in FLAG_COLUMNS:
        cols[c] = ((flags & _BIT[c]) != 0).astype(np.uint8)
    return cols
