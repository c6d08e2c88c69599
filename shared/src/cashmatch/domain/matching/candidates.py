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
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

import numpy as np
import pandas as pd

from cashmatch.domain.contract import INVOICE_DIRECTION_FOR
from cashmatch.domain.matching.knowledge import title_key_tokens
from cashmatch.domain.matching.text import (
    KEY_KINDS,
    compact,
    digits_only,
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
# Each blocking rule is one bit of a pair's flags while pairs are collected.
_BIT = {c: 1 << k for k, c in enumerate(FLAG_COLUMNS)}
_KIND_BIT = {k: _BIT[f"ref_{k}"] for k in KEY_KINDS}
_STRONG_REF = _BIT["ref_C"] | _BIT["ref_D"] | _BIT["ref_Z"]
_SPECIFIC = _BIT["by_iban"] | _BIT["by_ref_cp"] | _BIT["by_title_name"]
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


def encode(values: Iterable[Hashable], vocab: dict) -> np.ndarray:
    """Integer code of every value, adding the values `vocab` does not know yet."""
    return np.fromiter((vocab.setdefault(v, len(vocab)) for v in values), np.int64)


def lookup(values: Iterable[Hashable], vocab: dict) -> np.ndarray:
    """Integer code of every value in `vocab`, -1 for the unknown ones."""
    return np.fromiter((vocab.get(v, -1) for v in values), np.int64)


def expand(ids: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(id, position) for every position in [lo, hi) of each id, in id order."""
    counts = np.maximum(hi - lo, 0)
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(ids, counts), np.arange(total) - starts + np.repeat(lo, counts)


class Buckets:
    """Row positions grouped by an integer key; the rows of one key stay in ascending order."""

    def __init__(self, keys: np.ndarray, n_keys: int) -> None:
        self.order = np.argsort(keys, kind="stable")
        self.start = np.zeros(n_keys + 1, dtype=np.int64)
        np.cumsum(np.bincount(keys, minlength=n_keys), out=self.start[1:])

    def sizes(self, keys: np.ndarray) -> np.ndarray:
        """Rows per key (0 for the keys < 0, which stand for 'unknown')."""
        out = np.zeros(len(keys), dtype=np.int64)
        known = keys >= 0
        k = keys[known]
        out[known] = self.start[k + 1] - self.start[k]
        return out

    def expand(self, ids: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(id, row) for every row of the key of each id; keys < 0 find nothing."""
        known = keys >= 0
        ids, keys = ids[known], keys[known]
        out_ids, pos = expand(ids, self.start[keys], self.start[keys + 1])
        return out_ids, self.order[pos]


@dataclass(frozen=True)
class PayerIndex:
    """`knowledge.payer_map` as lookups: the (counterparty, count) entries of each payer key.

    The payer map and its index cost more than a whole one-transfer prediction, so a model keeps
    the index of its own knowledge (see `TrainedMatcher`); a plain payer map is indexed on the fly.
    """

    ids: dict[str, int]  # payer key -> key id
    n_key: np.ndarray  # transfers seen per key id (float64)
    start: np.ndarray  # the entries of key id k are start[k]:start[k + 1]
    cps: np.ndarray  # counterparty id per entry (object)
    n: np.ndarray  # transfers per entry (float64)
    entry_key: np.ndarray  # key id of each entry

    @classmethod
    def of(cls, payer: pd.DataFrame | None) -> PayerIndex:
        """Index a frame as `knowledge.payer_map` returns it."""
        if payer is None or payer.empty:
            empty = np.zeros(0)
            no_rows = np.zeros(0, dtype=np.int64)
            return cls({}, empty, np.zeros(1, dtype=np.int64), empty.astype(object), empty, no_rows)
        ids: dict = {}
        codes = encode(_objects(payer["payer_key"]), ids)
        order = np.argsort(codes, kind="stable")
        start = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(np.bincount(codes, minlength=len(ids)), out=start[1:])
        n_key = np.zeros(len(ids))
        n_key[codes[::-1]] = payer["n_key"].to_numpy(np.float64)[::-1]  # first row per key
        return cls(
            ids,
            n_key,
            start,
            np.array([str(c) for c in _objects(payer["counterparty_id"])[order]], dtype=object),
            payer["n"].to_numpy(np.float64)[order],
            codes[order],
        )

    @property
    def empty(self) -> bool:
        """Whether nothing is known."""
        return len(self.cps) == 0

    def entries(self, rows: np.ndarray, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(row, entry) for every entry of each row's key; unknown keys find nothing."""
        k = lookup(keys, self.ids)
        known = k >= 0
        k = k[known]
        return expand(rows[known], self.start[k], self.start[k + 1])


def payer_index(payer: pd.DataFrame | PayerIndex | None) -> PayerIndex:
    """The index of a payer map (itself if it is one already)."""
    return payer if isinstance(payer, PayerIndex) else PayerIndex.of(payer)


class Columns:
    """Equal-length named numpy columns: what `prepare` takes besides DataFrames.

    A service answering one transfer builds these from its validated request; building two
    DataFrames instead costs more than that transfer's blocking. Training reads whole frames
    (`Prepared.transfer_frame`), which `to_frame` gives.
    """

    __slots__ = ("_data", "_rows")

    def __init__(self, data: Mapping[str, np.ndarray]) -> None:
        lengths = {name: len(values) for name, values in data.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"columns of different lengths: {lengths}")
        self._data = dict(data)
        self._rows = next(iter(lengths.values()), 0)

    def __getitem__(self, name: str) -> np.ndarray:
        return self._data[name]

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def __len__(self) -> int:
        return self._rows

    @property
    def columns(self) -> list[str]:
        """The column names, in order."""
        return list(self._data)

    def take(self, rows: np.ndarray) -> Columns:
        """The rows a boolean mask or an index array selects, renumbered from 0."""
        return Columns({name: v[rows] for name, v in self._data.items()})

    def to_numpy(self, dtype: Any = None) -> np.ndarray:
        """The columns side by side as one (rows, columns) array."""
        if not self._data:
            return np.zeros((self._rows, 0), dtype=dtype)
        return np.column_stack([v.astype(dtype, copy=False) for v in self._data.values()])

    def assign(self, **columns: np.ndarray) -> Columns:
        """A copy with these columns added or replaced."""
        return Columns({**self._data, **columns})

    def to_frame(self) -> pd.DataFrame:
        """The same columns as a DataFrame (object columns stay object)."""
        return pd.DataFrame(
            {
                name: pd.Series(v, dtype=object) if v.dtype == object else v
                for name, v in self._data.items()
            }
        )

    @staticmethod
    def concat(parts: Sequence[Columns]) -> Columns:
        """The rows of `parts` one after another (the columns of the first part)."""
        names = parts[0].columns
        return Columns({name: np.concatenate([part[name] for part in parts]) for name in names})


Table = pd.DataFrame | Columns


# A column of a DataFrame (Series) or of Columns (ndarray) as the array blocking reads.
def _objects(values: pd.Series | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values if values.dtype == object else values.astype(object)
    return values.to_numpy(dtype=object)


def _strings(values: pd.Series | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return np.array([str(v) for v in values], dtype=object)
    return values.astype(str).to_numpy(dtype=object)


def _days(values: pd.Series | np.ndarray) -> np.ndarray:
    """Dates as days since the epoch."""
    if isinstance(values, np.ndarray):
        return values.astype("datetime64[D]").astype(np.int64)
    return values.to_numpy("datetime64[D]").astype(np.int64)


def _currency(value: object) -> str:
    # A missing currency (invalid under the contract) is a group of its own, not a wildcard.
    return "" if value is None or value != value else str(value)


def _texts(fn, values: np.ndarray) -> np.ndarray:
    return np.array([fn(v) for v in values], dtype=object)


# Pure functions of one value, applied to every invoice of every request; the same names,
# accounts and tax ids recur across requests, so recent results are kept (bounded).
_normalize_iban = functools.lru_cache(maxsize=1 << 16, typed=True)(normalize_iban)
_normalize_name = functools.lru_cache(maxsize=1 << 16, typed=True)(normalize_name)
_compact = functools.lru_cache(maxsize=1 << 16, typed=True)(compact)


@functools.lru_cache(maxsize=1 << 16, typed=True)
def _invoice_keys(number: object) -> tuple[str, ...]:
    return tuple(invoice_keys(number))


@functools.lru_cache(maxsize=1 << 16, typed=True)
def _name_words(name: object, min_len: int) -> tuple[str, ...]:
    # Distinct words of a name without legal forms, in order of appearance.
    return tuple(dict.fromkeys(w for w in name_tokens(name) if len(w) >= min_len))


_T = TypeVar("_T")


class _memo(Generic[_T]):
    """`functools.cached_property` without its lock: Python 3.11 holds one lock per property
    for all instances, which makes concurrent requests wait on each other; computing a value
    twice in a race is harmless here."""

    def __init__(self, fn: Callable[[Any], _T]) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    @overload
    def __get__(self, obj: None, owner: type) -> _memo[_T]: ...
    @overload
    def __get__(self, obj: object, owner: type) -> _T: ...
    def __get__(self, obj: object | None, owner: type) -> _T | _memo[_T]:
        if obj is None:
            return self
        value = self.fn(obj)
        obj.__dict__[self.name] = value  # found before this descriptor from now on
        return value


@dataclass(eq=False)
class Prepared:
    """Transfers and invoices with normalised columns, indexed by position.

    The per-row values blocking and features need (codes, tokens, days) are computed on first
    use and kept; the frames must not change after `prepare`.
    """

    transfers: Table
    invoices: Table

    @property
    def transfer_frame(self) -> pd.DataFrame:
        """The transfers as a DataFrame (training and the rules baseline read whole frames)."""
        return as_frame(self.transfers)

    @property
    def invoice_frame(self) -> pd.DataFrame:
        """The invoices as a DataFrame (see `transfer_frame`)."""
        return as_frame(self.invoices)

    # transfers --------------------------------------------------------------
    @_memo
    def t_ids(self) -> np.ndarray:
        """Transfer ids as strings (object)."""
        return _strings(self.transfers["transfer_id"])

    @_memo
    def t_amount(self) -> np.ndarray:
        """Transfer amounts (float64)."""
        return np.asarray(self.transfers["amount"], dtype=np.float64)

    @_memo
    def t_day(self) -> np.ndarray:
        """Booking day of each transfer (days since the epoch)."""
        return _days(self.transfers["booking_date"])

    @_memo
    def t_title(self) -> np.ndarray:
        """Titles as given (object)."""
        return _objects(self.transfers["title"])

    @_memo
    def t_cp_name(self) -> np.ndarray:
        """Payer names as given on the statement (object)."""
        return _objects(self.transfers["counterparty_name"])

    @_memo
    def t_title_c(self) -> np.ndarray:
        """Compacted titles (object)."""
        return _texts(_compact, self.t_title)

    @_memo
    def t_iban(self) -> np.ndarray:
        """Normalised payer accounts (object, '' when missing)."""
        return _texts(_normalize_iban, _objects(self.transfers["counterparty_iban"]))

    @_memo
    def t_name(self) -> np.ndarray:
        """Normalised payer names (object, '' when missing)."""
        return _texts(_normalize_name, self.t_cp_name)

    @_memo
    def t_title_tokens(self) -> list[list[str]]:
        """Title tokens that can be customer or contract numbers (see `title_key_tokens`)."""
        return [title_key_tokens(v) for v in self.t_title]

    @_memo
    def t_digits(self) -> np.ndarray:
        """Digits of each compacted title, leading zeros of each group dropped (object)."""
        return np.array([digits_only(s) for s in self.t_title_c], dtype=object)

    @_memo
    def t_title_len(self) -> np.ndarray:
        """Length of each compacted title."""
        return np.fromiter((len(s) for s in self.t_title_c), np.int64, len(self.t_title_c))

    @_memo
    def t_payer_keys(self) -> tuple[np.ndarray, list[str]]:
        """Every payer key of every transfer: account "I:", name "N:", title tokens "T:"."""
        ts: list[int] = []
        keys: list[str] = []
        for t, (iban, name, toks) in enumerate(
            zip(self.t_iban, self.t_name, self.t_title_tokens, strict=True)
        ):
            own = ([f"I:{iban}"] if iban else []) + ([f"N:{name}"] if name else [])
            own += [f"T:{tok}" for tok in toks]
            ts.extend([t] * len(own))
            keys.extend(own)
        return np.array(ts, dtype=np.int64), keys

    # invoices ---------------------------------------------------------------
    @_memo
    def i_ids(self) -> np.ndarray:
        """Invoice ids as strings (object)."""
        return _strings(self.invoices["invoice_id"])

    @_memo
    def i_open(self) -> np.ndarray:
        """Open amounts (float64)."""
        return np.asarray(self.invoices["open_amount"], dtype=np.float64)

    @_memo
    def i_amount(self) -> np.ndarray:
        """Gross amounts (float64)."""
        return np.asarray(self.invoices["amount"], dtype=np.float64)

    @_memo
    def i_issue(self) -> np.ndarray:
        """Issue day of each invoice (days since the epoch)."""
        return _days(self.invoices["issue_date"])

    @_memo
    def i_due(self) -> np.ndarray:
        """Due day of each invoice (days since the epoch)."""
        return _days(self.invoices["due_date"])

    @_memo
    def i_number(self) -> np.ndarray:
        """Invoice numbers as given (object)."""
        return _objects(self.invoices["invoice_number"])

    @_memo
    def i_cp_name(self) -> np.ndarray:
        """Counterparty names as given (object)."""
        return _objects(self.invoices["counterparty_name"])

    @_memo
    def i_number_c(self) -> np.ndarray:
        """Compacted invoice numbers (object)."""
        return _texts(_compact, self.i_number)

    @_memo
    def i_iban(self) -> np.ndarray:
        """Normalised invoice accounts (object, '' when missing)."""
        return _texts(_normalize_iban, _objects(self.invoices["counterparty_iban"]))

    @_memo
    def i_name(self) -> np.ndarray:
        """Normalised counterparty names (object)."""
        return _texts(_normalize_name, self.i_cp_name)

    @_memo
    def i_digits(self) -> np.ndarray:
        """Digits of each compacted invoice number, leading zeros of each group dropped."""
        return np.array([digits_only(s) for s in self.i_number_c], dtype=object)

    @_memo
    def i_number_len(self) -> np.ndarray:
        """Length of each compacted invoice number."""
        return np.fromiter((len(s) for s in self.i_number_c), np.int64, len(self.i_number_c))

    @_memo
    def i_name_c(self) -> np.ndarray:
        """Normalised counterparty names without spaces (object)."""
        return np.array([s.replace(" ", "") for s in self.i_name], dtype=object)

    @_memo
    def i_tax_c(self) -> np.ndarray:
        """Compacted tax ids (object, '' when missing)."""
        return _texts(_compact, _objects(self.invoices["counterparty_tax_id"]))

    @_memo
    def i_tax_len(self) -> np.ndarray:
        """Length of each compacted tax id."""
        return np.fromiter((len(s) for s in self.i_tax_c), np.int64, len(self.i_tax_c))

    @_memo
    def i_cp_id(self) -> np.ndarray:
        """Counterparty id of each invoice (object of str)."""
        return _strings(self.invoices["counterparty_id"])

    # codes shared by both sides -----------------------------------------------
    @_memo
    def _grp_codes(self) -> tuple[np.ndarray, np.ndarray]:
        # A transfer pays invoices of the direction it implies, in its own currency.
        tr, inv = self.transfers, self.invoices
        t_dir = [INVOICE_DIRECTION_FOR.get(d, "?") for d in _objects(tr["direction"])]
        vocab: dict = {}
        return (
            encode(zip(t_dir, map(_currency, _objects(tr["currency"])), strict=True), vocab),
            encode(
                zip(
                    map(str, _objects(inv["direction"])),
                    map(_currency, _objects(inv["currency"])),
                    strict=True,
                ),
                vocab,
            ),
        )

    @property
    def t_grp(self) -> np.ndarray:
        """Group code (the invoice direction and currency a transfer pays) of each transfer."""
        return self._grp_codes[0]

    @property
    def i_grp(self) -> np.ndarray:
        """Group code (direction and currency) of each invoice, in the transfers' code space."""
        return self._grp_codes[1]

    @_memo
    def iban_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """Codes of the normalised accounts of transfers and invoices (one code space)."""
        vocab: dict = {}
        return encode(self.t_iban, vocab), encode(self.i_iban, vocab)

    @_memo
    def cp_codes(self) -> dict[str, int]:
        """Counterparty id -> code (codes in order of first appearance among the invoices)."""
        vocab: dict = {}
        encode(self.i_cp_id, vocab)
        return vocab

    @_memo
    def i_cp(self) -> np.ndarray:
        """Counterparty code of each invoice."""
        return lookup(self.i_cp_id, self.cp_codes)

    @_memo
    def _cp_groups(self) -> tuple[dict, np.ndarray, Buckets]:
        vocab: dict = {}
        codes = encode(zip(self.i_grp.tolist(), self.i_cp.tolist(), strict=True), vocab)
        return vocab, codes, Buckets(codes, len(vocab))

    def counterparty_invoices(self, t: np.ndarray, cp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(t, i) for every invoice of counterparty code `cp` in the group transfer `t` pays."""
        vocab, _, buckets = self._cp_groups
        keys = lookup(zip(self.t_grp[t].tolist(), cp.tolist(), strict=True), vocab)
        return buckets.expand(t, keys)

    def invoice_counterparty_group(self, i: np.ndarray) -> np.ndarray:
        """Code of (group, counterparty) of invoices `i`, as `counterparty_invoices` uses it."""
        return self._cp_groups[1][i]

    def invoices_of_group(self, t: np.ndarray, cpg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(t, i) for every invoice with (group, counterparty) code `cpg`."""
        return self._cp_groups[2].expand(t, cpg)


def with_open_amount(invoices: Table) -> Table:
    """`invoices`, with `open_amount` the amount where the column is missing."""
    if "open_amount" in invoices:
        return invoices
    return invoices.assign(open_amount=np.asarray(invoices["amount"], dtype=np.float64))


def as_frame(table: Table) -> pd.DataFrame:
    """A table as a DataFrame (Columns are converted)."""
    return table if isinstance(table, pd.DataFrame) else table.to_frame()


def _as_dates(values: pd.Series) -> pd.Series | None:
    return None if values.dtype.kind == "M" else pd.to_datetime(values)


def _as_float(values: pd.Series) -> pd.Series | None:
    return None if values.dtype == np.float64 else values.astype("float64")


def prepare(transfers: Table, invoices: Table) -> Prepared:
    """Positions become the ids; dates, amounts and open amounts get the types the model reads.

    Columns already of the right type are not touched (the caller's frames never are); the
    normalised texts and codes blocking and features need are computed on first use. Columns
    (numpy arrays) are read as they come: each value is converted where it is first read.
    """
    if isinstance(transfers, Columns) and isinstance(invoices, Columns):
        return Prepared(transfers, with_open_amount(invoices))
    transfers, invoices = as_frame(transfers), as_frame(invoices)
    tr = transfers.reset_index(drop=True)
    inv = invoices.reset_index(drop=True)
    t_fix = {"booking_date": _as_dates(tr["booking_date"]), "amount": _as_float(tr["amount"])}
    i_fix = {
        "amount": _as_float(inv["amount"]),
        "open_amount": _as_float(inv["open_amount"])
        if "open_amount" in inv
        else inv["amount"].astype("float64"),
        "issue_date": _as_dates(inv["issue_date"]),
        "due_date": _as_dates(inv["due_date"]),
    }
    if not pd.api.types.is_string_dtype(inv["counterparty_id"]):
        i_fix["counterparty_id"] = pd.Series([str(v) for v in inv["counterparty_id"]], dtype=object)
    # One assign per frame at most: each column insert costs more than the work itself at the
    # size of one request.
    t_fix = {k: v for k, v in t_fix.items() if v is not None}
    i_fix = {k: v for k, v in i_fix.items() if v is not None}
    return Prepared(tr.assign(**t_fix) if t_fix else tr, inv.assign(**i_fix) if i_fix else inv)


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
    for t, (g, title) in enumerate(zip(p.t_grp.tolist(), p.t_title, strict=True)):
        for key in title_keys(title):
            t_rows.append(t)
            t_keys.append((g, key))
    t_codes = lookup(t_keys, vocab)
    # A key shared by too many invoices (a bare "2024", a common sequence number) says nothing.
    t_codes[buckets.sizes(t_codes) > params.max_key_invoices] = -1
    hit, rows = buckets.expand(np.arange(len(t_rows)), t_codes)
    kind_bit = np.fromiter((_KIND_BIT[t_keys[h][1][0]] for h in hit.tolist()), np.int64, len(hit))
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


def _ref_pairs(p: Prepared, params: BlockingParams) -> pd.DataFrame:
    """Reference-key pairs (t, i, ref_C .. ref_S), sorted; what the rules baseline uses."""
    return _hits_frame(*_ref_hits(p, params), [f"ref_{k}" for k in KEY_KINDS])


def _iban_pairs(p: Prepared) -> pd.DataFrame:
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
    order = np.lexsort((found, closeness, -priority, t))
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
