"""Transfers and invoices prepared for matching: typed columns, and the normalised texts, days
and codes blocking and features read, each computed once per input on first use."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

import numpy as np
import pandas as pd

from cashmatch.domain.contract import INVOICE_DIRECTION_FOR
from cashmatch.domain.matching.codes import Buckets, encode, lookup
from cashmatch.domain.matching.knowledge import title_key_tokens
from cashmatch.domain.matching.remittance import Remittance, parse_remittance
from cashmatch.domain.matching.tables import (
    Columns,
    Table,
    as_days,
    as_frame,
    as_objects,
    as_strings,
    with_open_amount,
)
from cashmatch.domain.matching.text import compact, digits_only, normalize_iban, normalize_name


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

    def with_transfers(self, transfers: Table) -> Prepared:
        """These invoices with other (already prepared) transfers: one chunk of a month.

        What depends on the invoices alone is computed here once and shared, not once per
        chunk; codes shared with the transfers (groups, accounts) are the chunk's own.
        """
        chunk = Prepared(transfers, self.invoices)
        for name in _INVOICE_ONLY:
            chunk.__dict__[name] = getattr(self, name)
        return chunk

    def own_part(self) -> Prepared:
        """This chunk without the invoices it shares with the month (what a worker sends
        back: `joined_with` puts the month's invoices back)."""
        own = Prepared(self.transfers, as_frame(self.invoices).iloc[:0])
        own.__dict__.update(
            (k, v) for k, v in self.__dict__.items() if k not in _INVOICE_ONLY and k not in _FIELDS
        )
        return own

    def joined_with(self, month: Prepared) -> Prepared:
        """`own_part` joined with the month's invoices again."""
        chunk = month.with_transfers(self.transfers)
        chunk.__dict__.update(
            (k, v) for k, v in self.__dict__.items() if k not in _INVOICE_ONLY and k not in _FIELDS
        )
        return chunk

    # transfers --------------------------------------------------------------
    @_memo
    def t_ids(self) -> np.ndarray:
        """Transfer ids as strings (object)."""
        return as_strings(self.transfers["transfer_id"])

    @_memo
    def t_amount(self) -> np.ndarray:
        """Transfer amounts (float64)."""
        return np.asarray(self.transfers["amount"], dtype=np.float64)

    @_memo
    def t_day(self) -> np.ndarray:
        """Booking day of each transfer (days since the epoch)."""
        return as_days(self.transfers["booking_date"])

    @_memo
    def t_title(self) -> np.ndarray:
        """Titles as given (object)."""
        return as_objects(self.transfers["title"])

    @_memo
    def t_cp_name(self) -> np.ndarray:
        """Payer names as given on the statement (object)."""
        return as_objects(self.transfers["counterparty_name"])

    @_memo
    def t_title_c(self) -> np.ndarray:
        """Compacted titles (object)."""
        return _texts(_compact, self.t_title)

    @_memo
    def t_remittance(self) -> list[Remittance]:
        """Each title read field by field (creditor references, split payment, SEPA tags)."""
        return [parse_remittance(v) for v in self.t_title]

    @_memo
    def t_ref_c(self) -> np.ndarray:
        """Compacted reference text of each title: the title itself unless it is structured,
        else only its fields that carry references (see `remittance.Remittance`)."""
        return np.array(
            [
                c if r.kind == "free" else _compact(r.reference_text)
                for c, r in zip(self.t_title_c, self.t_remittance, strict=True)
            ],
            dtype=object,
        )

    @_memo
    def t_vat(self) -> np.ndarray:
        """The split payment's VAT amount of each transfer (NaN when the title has none)."""
        return np.array(
            [np.nan if r.vat is None else r.vat for r in self.t_remittance], dtype=np.float64
        )

    @_memo
    def t_iban(self) -> np.ndarray:
        """Normalised payer accounts (object, '' when missing)."""
        return _texts(_normalize_iban, as_objects(self.transfers["counterparty_iban"]))

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
        """Digits of each compacted reference text, leading zeros of each group dropped."""
        return np.array([digits_only(s) for s in self.t_ref_c], dtype=object)

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
        return as_strings(self.invoices["invoice_id"])

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
        return as_days(self.invoices["issue_date"])

    @_memo
    def i_due(self) -> np.ndarray:
        """Due day of each invoice (days since the epoch)."""
        return as_days(self.invoices["due_date"])

    @_memo
    def i_number(self) -> np.ndarray:
        """Invoice numbers as given (object)."""
        return as_objects(self.invoices["invoice_number"])

    @_memo
    def i_cp_name(self) -> np.ndarray:
        """Counterparty names as given (object)."""
        return as_objects(self.invoices["counterparty_name"])

    @_memo
    def i_number_c(self) -> np.ndarray:
        """Compacted invoice numbers (object)."""
        return _texts(_compact, self.i_number)

    @_memo
    def i_iban(self) -> np.ndarray:
        """Normalised invoice accounts (object, '' when missing)."""
        return _texts(_normalize_iban, as_objects(self.invoices["counterparty_iban"]))

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
        return _texts(_compact, as_objects(self.invoices["counterparty_tax_id"]))

    @_memo
    def i_tax_len(self) -> np.ndarray:
        """Length of each compacted tax id."""
        return np.fromiter((len(s) for s in self.i_tax_c), np.int64, len(self.i_tax_c))

    @_memo
    def i_cp_id(self) -> np.ndarray:
        """Counterparty id of each invoice (object of str)."""
        return as_strings(self.invoices["counterparty_id"])

    # codes shared by both sides -----------------------------------------------
    @_memo
    def _grp_codes(self) -> tuple[np.ndarray, np.ndarray]:
        # A transfer pays invoices of the direction it implies, in its own currency.
        tr, inv = self.transfers, self.invoices
        t_dir = [INVOICE_DIRECTION_FOR.get(d, "?") for d in as_objects(tr["direction"])]
        vocab: dict = {}
        return (
            encode(zip(t_dir, map(_currency, as_objects(tr["currency"])), strict=True), vocab),
            encode(
                zip(
                    map(str, as_objects(inv["direction"])),
                    map(_currency, as_objects(inv["currency"])),
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


# Memos of `Prepared` that read the invoices only (`Prepared.with_transfers` shares them).
_INVOICE_ONLY = [
    name
    for name, value in vars(Prepared).items()
    if isinstance(value, _memo) and (name.startswith("i_") or name == "cp_codes")
]

_FIELDS = ("transfers", "invoices")


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
