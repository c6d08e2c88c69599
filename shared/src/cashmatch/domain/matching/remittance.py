"""Structured remittance information: ISO 11649 creditor references, the Polish split-payment
message and the SEPA tags banks put into MT940/camt exports.

Most titles are free text, but a growing share follows a structure whose fields say what they
are. Reading the structure keeps the reference keys to the fields that name invoices (the
split-payment VAT amount or a SEPA mandate id are digits too, and only add false keys), turns a
creditor reference with valid check digits into an exact key, and exposes the payee's tax id and
the VAT amount for checks the free text cannot give.

    >>> r = parse_remittance("/VAT/23,00/IDC/5261040828/INV/FV/2025/03/0042/TXT/zaplata")
    >>> r.reference_text, r.tax_id, r.vat
    ('FV/2025/03/0042 zaplata', '5261040828', 23.0)
    >>> parse_remittance("RF18 5390 0754 7034").rf
    ('539007547034',)
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from cashmatch.domain.matching.text import ascii_upper

# ISO 11649: "RF", two check digits, then 1-21 letters or digits; printed in groups of four.
_RF_START = re.compile(r"(?<![0-9A-Z])RF([0-9]{2}) ?")
_RF_BODY_MAX = 21
_ALNUM_RUN = re.compile(r"[0-9A-Z]+")

# The Polish split-payment message (komunikat MPP): /VAT/amount/IDC/tax id/INV/invoice/TXT/text.
_MPP_FIELD = re.compile(r"/(VAT|IDC|INV|TXT)/")
_MPP_MIN_FIELDS = 2  # a title that happens to contain "/INV/" once is not a split payment

# SEPA tags of the German DFÜ format (MT940 field 86, camt Ustrd as exported): a 4-letter tag
# with "+". Only the fields that name what is paid feed the reference keys: the remittance text
# (SVWZ), the end-to-end reference the payer's system set (EREF) and the customer reference
# (KREF); ABWA (the ultimate debtor) names a company, which name blocking reads from the title.
# Mandate, creditor ids and the rest are digits that say nothing of the invoice.
_SEPA_TAG = re.compile(
    r"(?<![0-9A-Z])(EREF|KREF|MREF|CRED|DEBT|SVWZ|ABWA|ABWE|COAS|OAMT|BREF|RREF|PURP|IBAN|BIC)\+"
)
_SEPA_REFERENCE_TAGS = ("SVWZ", "EREF", "KREF", "ABWA")
_NOT_PROVIDED = frozenset({"NOTPROVIDED", "NOT PROVIDED", "NONREF"})
_AMOUNT = re.compile(r"^\s*([0-9][0-9 ]*)(?:[.,]([0-9]{1,2}))?\s*$")


@dataclass(frozen=True)
class Remittance:
    """What a title says, field by field.

    `reference_text` is where invoice references may be written: the whole title when it has no
    structure, else the fields that carry references. `rf` are the bodies of the creditor
    references with valid check digits; `tax_id` the split payment's /IDC/ (compacted, '' when
    absent); `vat` its /VAT/ amount (None when absent or unreadable); `kind` one of "free",
    "mpp" (split payment) or "sepa".
    """

    reference_text: str
    rf: tuple[str, ...] = ()
    tax_id: str = ""
    vat: float | None = None
    kind: str = "free"


def rf_check(reference: str) -> bool:
    """Whether an ISO 11649 reference ("RF" + 2 check digits + body, any spacing) is valid.

    Like an IBAN: the first four characters move to the end, letters become 10..35, and the
    number is 1 modulo 97.
    """
    s = re.sub(r"\s+", "", reference.upper())
    if not re.fullmatch(r"RF[0-9]{2}[0-9A-Z]{1,21}", s):
        return False
    digits = "".join(str(int(ch, 36)) for ch in s[4:] + s[:4])
    return int(digits) % 97 == 1


def rf_reference(body: str) -> str:
    """The ISO 11649 reference of `body` (its check digits computed), e.g. for a simulator."""
    body = re.sub(r"[^0-9A-Z]", "", body.upper())
    if not 1 <= len(body) <= _RF_BODY_MAX:
        raise ValueError(f"an RF reference body has 1-21 letters or digits, got {body!r}")
    digits = "".join(str(int(ch, 36)) for ch in body + "RF00")
    return f"RF{98 - int(digits) % 97:02d}{body}"


def _rf_bodies(text: str) -> list[str]:
    """Bodies of the valid creditor references in upper-case `text`.

    The body is either one run of letters and digits or print groups of at most four separated
    by single spaces; the groups are read greedily and every prefix whose check digits hold is
    a body, so a following word ("RF18 5390 0754 7034 ZAPLATA") does not hide the reference.
    """
    found: list[str] = []
    for m in _RF_START.finditer(text):
        check = m.group(1)
        groups: list[str] = []
        pos = m.end()
        while pos < len(text):
            run = _ALNUM_RUN.match(text, pos)
            if run is None:
                break
            groups.append(run.group())
            if len(run.group()) > 4 or sum(map(len, groups)) >= _RF_BODY_MAX:
                break
            pos = run.end()
            if text[pos : pos + 1] != " ":
                break
            pos += 1
        # Every reading whose check digits hold: a following short word makes a longer
        # candidate valid by chance (1 in 97), and a wrong body joins no invoice number.
        for k in range(len(groups), 0, -1):
            body = "".join(groups[:k])
            if len(body) <= _RF_BODY_MAX and rf_check(f"RF{check}{body}"):
                found.append(body)
    return found


def _amount(text: str) -> float | None:
    m = _AMOUNT.match(text)
    if m is None:
        return None
    whole = int(m.group(1).replace(" ", ""))
    cents = int((m.group(2) or "0").ljust(2, "0"))
    return whole + cents / 100


def _split_fields(text: str, pattern: re.Pattern[str]) -> tuple[str, dict[str, str]]:
    """Text before the first tag, and each tag's value (a repeated tag's values joined)."""
    parts = pattern.split(text)
    fields: dict[str, str] = {}
    for tag, value in zip(parts[1::2], parts[2::2], strict=True):
        value = value.strip(" /")
        fields[tag] = f"{fields[tag]} {value}".strip() if tag in fields else value
    return parts[0], fields


def _parse_mpp(upper: str, title: str) -> Remittance | None:
    if len(_MPP_FIELD.findall(upper)) < _MPP_MIN_FIELDS:
        return None
    # Fields are cut out of the original text (same positions: the upper-case form keeps the
    # length only for ASCII), so the reference keeps its own spelling.
    source = title if len(title) == len(upper) else upper
    parts = _MPP_FIELD.split(upper)
    fields: dict[str, str] = {}
    pos = len(parts[0])
    for tag, value in zip(parts[1::2], parts[2::2], strict=True):
        pos += len(tag) + 2
        fields[tag] = source[pos : pos + len(value)].strip(" /")
        pos += len(value)
    reference = " ".join(v for v in (fields.get("INV", ""), fields.get("TXT", ""), parts[0]) if v)
    return Remittance(
        reference_text=reference.strip(),
        rf=tuple(_rf_bodies(ascii_upper(reference))),
        tax_id=re.sub(r"[^0-9A-Z]", "", ascii_upper(fields.get("IDC", ""))),
        vat=_amount(fields.get("VAT", "")),
        kind="mpp",
    )


def _parse_sepa(upper: str) -> Remittance | None:
    if not _SEPA_TAG.search(upper):
        return None
    before, fields = _split_fields(upper, _SEPA_TAG)
    kept = [before.strip()] + [
        fields[tag]
        for tag in _SEPA_REFERENCE_TAGS
        if tag in fields and fields[tag].strip() not in _NOT_PROVIDED
    ]
    reference = " ".join(v for v in kept if v)
    return Remittance(reference_text=reference, rf=tuple(_rf_bodies(reference)), kind="sepa")


@functools.lru_cache(maxsize=1 << 16)
def _parse(title: str) -> Remittance:
    upper = ascii_upper(title)
    # Cheap guards first: most titles have none of the markers.
    if "/VAT/" in upper or "/IDC/" in upper or "/INV/" in upper:
        mpp = _parse_mpp(upper, title)
        if mpp is not None:
            return mpp
    if "+" in upper:
        sepa = _parse_sepa(upper)
        if sepa is not None:
            return sepa
    rf = tuple(_rf_bodies(upper)) if "RF" in upper else ()
    return Remittance(reference_text=title, rf=rf)


def parse_remittance(title: object) -> Remittance:
    """The structure of one transfer title (see `Remittance`); missing titles parse as ''."""
    if not isinstance(title, str):
        return Remittance(reference_text="")
    return _parse(title)
