"""Normalisation of references, names and accounts, and the keys used for blocking.

References on bank statements are retyped by people: separators change ("FV/2024/0042" becomes
"FV 2024-0042" or "FV20240042"), leading zeros vanish ("2024/42"), or only the sequence number
survives ("42"). Each invoice number therefore yields several keys of decreasing strength and a
title yields the same kinds of keys over windows of its tokens, so one exact dictionary join finds
all of these variants without comparing every transfer with every invoice.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pandas as pd

_NON_ALNUM = re.compile(r"[^0-9A-Z]+")
_DIGITS = re.compile(r"[0-9]+")

# Key kinds, strongest first: the whole compacted number, its digits glued together, its digit
# groups without leading zeros, and the bare sequence number (last digit group).
KEY_KINDS = ("C", "D", "Z", "S")
_MAX_WINDOW = 4

# Legal-form words say nothing about who a company is; dropping them keeps name keys specific.
_LEGAL_FORMS = frozenset(
    [
        "GMBH",
        "AG",
        "KG",
        "OHG",
        "UG",
        "SE",
        "LTD",
        "LIMITED",
        "LLC",
        "LLP",
        "INC",
        "CORP",
        "CORPORATION",
        "CO",
        "COMPANY",
        "PLC",
        "SA",
        "SAS",
        "SARL",
        "SRL",
        "SPA",
        "BV",
        "NV",
        "OY",
        "AB",
        "AS",
        "APS",
        "SP",
        "Z",
        "O",
        "OO",
        "ZOO",
        "SPOLKA",
        "SK",
        "SC",
        "KFT",
        "SRO",
        "THE",
        "AND",
        "UND",
        "ET",
        "DE",
    ]
)


def ascii_upper(text: object) -> str:
    """Upper-case ASCII form of a value; missing values become the empty string."""
    if text is None or (isinstance(text, float) and np.isnan(text)) or text is pd.NA:
        return ""
    s = unicodedata.normalize("NFKD", str(text))
    return s.encode("ascii", "ignore").decode("ascii").upper()


def compact(text: object) -> str:
    """Only the letters and digits of `text`, upper case (separators removed)."""
    return _NON_ALNUM.sub("", ascii_upper(text))


def tokens(text: object) -> list[str]:
    """Alphanumeric tokens of `text`, upper case."""
    return [t for t in _NON_ALNUM.split(ascii_upper(text)) if t]


def strip_zeros(group: str) -> str:
    """A digit group without its leading zeros ("0042" -> "42", "000" -> "0")."""
    return group.lstrip("0") or "0"


def normalize_iban(value: object) -> str:
    """IBAN without spaces, upper case; empty when missing."""
    return compact(value)


def name_tokens(name: object) -> list[str]:
    """Tokens of a company or person name without legal-form words."""
    return [t for t in tokens(name) if t not in _LEGAL_FORMS]


def normalize_name(name: object) -> str:
    """A name reduced to its significant tokens, space separated."""
    return " ".join(name_tokens(name))


def invoice_keys(number: object) -> list[str]:
    """Blocking keys of one invoice number, each prefixed by its kind (C, D, Z, S)."""
    c = compact(number)
    groups = _DIGITS.findall(c)
    keys: list[str] = []
    if len(c) >= 4 and groups:
        keys.append("C:" + c)
    digits = "".join(groups)
    if len(digits) >= 4:
        keys.append("D:" + digits)
    stripped = [strip_zeros(g) for g in _DIGITS.findall(ascii_upper(number))]
    if len(stripped) >= 2 or (stripped and len(stripped[0]) >= 3):
        keys.append("Z:" + "|".join(stripped))
    if stripped and stripped[-1] != "0":
        keys.append("S:" + stripped[-1])
    return keys


def title_keys(title: object) -> set[str]:
    """Blocking keys found in a transfer title (windows of tokens and digit groups)."""
    text = ascii_upper(title)
    if not text:
        return set()
    toks = [t for t in _NON_ALNUM.split(text) if t]
    keys: set[str] = set()
    n = len(toks)
    for i in range(n):
        joined = ""
        has_digit = False
        for j in range(i, min(n, i + _MAX_WINDOW)):
            joined += toks[j]
            has_digit = has_digit or any(ch.isdigit() for ch in toks[j])
            if has_digit and len(joined) >= 4:
                keys.add("C:" + joined)
    groups = _DIGITS.findall(text)
    m = len(groups)
    for i in range(m):
        keys.add("S:" + strip_zeros(groups[i]))
        raw = ""
        stripped: list[str] = []
        for j in range(i, min(m, i + _MAX_WINDOW)):
            raw += groups[j]
            stripped.append(strip_zeros(groups[j]))
            if len(raw) >= 4:
                keys.add("D:" + raw)
            if len(stripped) >= 2 or len(stripped[0]) >= 3:
                keys.add("Z:" + "|".join(stripped))
    return keys


def digits_only(text: str) -> str:
    """The digits of an already compacted string, leading zeros of each group dropped."""
    return "".join(strip_zeros(g) for g in _DIGITS.findall(text))
