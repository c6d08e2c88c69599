"""Finance-system simulator: invoices, bank transfers and the human matches between them.

The simulation is agent-based and per counterparty. Each customer (receivables) and supplier
(payables) gets stable attributes (name, tax id, IBAN, currency) and habits drawn once (how
late it pays, whether it batches invoices, how it writes titles, whether a parent company or a
factor pays for it, ...). Invoices are issued per counterparty; payments are planned invoice by
invoice and grouped into transfers; titles and statement names are rendered last, in booking
order. Bank flows that pay no invoice (salaries, taxes, fees, refunds, ...) are added on top.

Conventions of the frames `generate()` returns:

- dates (`issue_date`, `due_date`, `booking_date`) are `datetime64[ns]` at midnight, and
  `matched_at` is a `datetime64[ns]` timestamp;
- amounts are float64 rounded to two decimals (internally everything is integer cents, so the
  sums that must agree agree exactly);
- ids and texts are pandas' default string dtype; missing values are NaN.

Labelling conventions (the "human" matches):

- a bank fee or an early-payment discount taken off is not paid by anybody: the match rows
  carry what was actually paid, so such an invoice keeps a small unpaid rest (written off
  outside the bank); a fee is taken off the largest invoice of a collective payment;
- a credit note is matched with its negative amount, in the same transfer as its invoice;
- no prepayments: every transfer is booked on or after the issue date of each invoice it pays.

Reproducibility: every random draw comes from numpy Generators seeded from
`(config.seed, stream, counterparty)`, so one counterparty's history does not depend on the
others', and a `shift_from` month changes nothing booked or issued before it.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import pandas as pd

from shared import contract

T = TypeVar("T")

PROFILES = ("default", "messy")

# Every label a transfer can carry in `SyntheticData.truth_notes` (one row per label).
PATTERNS: dict[str, str] = {
    # what the transfer pays: exactly one of these four
    "single": "pays one invoice in full (less a fee or discount, if any)",
    "collective": "pays two or more invoices in one transfer (credit notes included)",
    "partial": "pays part of one invoice: an instalment",
    "no_invoice": "pays no invoice; it has no match rows",
    # how the title refers to the invoices: exactly one for transfers that pay invoices
    "ref_exact": "the invoice number(s) as printed, maybe among other words",
    "ref_reformatted": "separators changed or removed, lowercase, leading zeros or prefix dropped",
    "ref_typo": "a reference with a swapped, dropped, doubled or replaced character",
    "ref_sequence_only": "only the sequence number of the invoice",
    "ref_generic": "a title without any invoice reference",
    "ref_empty": "an empty, null or placeholder title",
    "ref_stale": "a standing order whose title names another (older) invoice",
    # further traits, any number of them
    "title_truncated": "the 140-character title limit cut off a reference",
    "credit_note": "a credit note is netted into the payment",
    "third_party_parent": "a parent company pays on behalf of the counterparty",
    "third_party_factoring": "a factoring company pays on behalf of the counterparty",
    "bank_fee": "a bank fee was taken off the amount",
    "early_discount": "an early-payment discount was taken off",
    "subscription": "pays a subscription invoice (identical monthly amounts)",
    "foreign_currency": "the currency is not PLN",
    "name_variant": "the statement name differs from the invoice's name beyond letter case",
    "name_missing": "no counterparty name on the statement",
    "iban_unknown": "paid from or to an account missing from the invoice's master data",
    # kinds of transfers that pay no invoice
    "salary": "salary paid to an employee",
    "tax": "tax or social-security payment",
    "bank_charge": "a bank's own fee or commission",
    "refund": "refund of an overpayment or a complaint",
    "unknown_incoming": "incoming money from somebody unknown to the finance system",
    "internal": "transfer between the company's own accounts",
    "gateway_payout": "payout of a card / online payment gateway",
    "interest": "interest credited by the bank",
}

_TITLE_MAX = 140  # Polish domestic transfers carry 4 x 35 characters of remittance text
_NAME_LINE = 35
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()

_STREAM_WORLD, _STREAM_PARTY, _STREAM_INVOICES, _STREAM_PLAN, _STREAM_TEXT, _STREAM_OTHER = range(6)
_STYLES = ("exact", "reformatted", "typo", "sequence_only", "generic", "empty")
_REF_STYLES = 4  # the first four styles put a reference in the title


# --------------------------------------------------------------------------------------------
# Public API


@dataclass(frozen=True)
class SynthConfig:
    """What to simulate; the same config always yields the same data."""

    months: int = 8
    start: str = "2025-01"  # first month, YYYY-MM
    seed: int = 7
    scale: float = 1.0  # multiplies the number of counterparties and transfers
    profile: str = "default"  # "default" | "messy"
    shift_from: str | None = None  # from this month (YYYY-MM) on, payment habits drift


@dataclass
class SyntheticData:
    """The three contract tables, plus per-transfer truth labels (not part of the contract)."""

    invoices: pd.DataFrame
    transfers: pd.DataFrame
    matches: pd.DataFrame
    truth_notes: pd.DataFrame | None = None  # transfer_id, pattern: one row per label


def generate(config: SynthConfig) -> SyntheticData:
    """Simulate invoices, bank transfers and human matches for `config.months` months."""
    world = _World(config)
    for party in world.parties:
        _issue_invoices(world, party)
    world.invoices.number(world)
    out = _Out()
    for party in world.parties:
        if party.kind == "subscription":
            pending = _plan_subscription(world, party)
        elif party.kind == "supplier":
            pending = _plan_supplier(world, party)
        else:
            pending = _plan_regular_customer(world, party)
        _emit_party(world, party, pending, out)
    _other_flows(world, out)
    return _assemble(world, out)


def pattern_rates(data: SyntheticData) -> pd.DataFrame:
    """Share of each month's transfers carrying each truth label (rows: YYYY-MM)."""
    if data.truth_notes is None:
        raise ValueError("these data carry no truth_notes")
    months = data.transfers.set_index("transfer_id")["booking_date"].dt.strftime("%Y-%m")
    notes = data.truth_notes.assign(month=data.truth_notes["transfer_id"].map(months))
    counts = notes.groupby(["month", "pattern"]).size().unstack(fill_value=0)
    totals = months.value_counts().sort_index()
    rates = counts.div(totals, axis=0).reindex(columns=[p for p in PATTERNS if p in counts])
    rates.insert(0, "transfers", totals)
    return rates


# --------------------------------------------------------------------------------------------
# Randomness


def _rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, index)))


class _Draw:
    """Scalar draws from one seeded Generator, buffered: a scalar Generator call costs ~1 µs."""

    __slots__ = ("_rng", "_u", "_ui", "_z", "_zi", "rng")

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._u: list[float] = []
        self._ui = 0
        self._z: list[float] = []
        self._zi = 0

    def u(self) -> float:
        if self._ui == len(self._u):
            self._u = self.rng.random(64).tolist()
            self._ui = 0
        self._ui += 1
        return self._u[self._ui - 1]

    def z(self) -> float:
        if self._zi == len(self._z):
            self._z = self.rng.standard_normal(32).tolist()
            self._zi = 0
        self._zi += 1
        return self._z[self._zi - 1]

    def chance(self, p: float) -> bool:
        return self.u() < p

    def integer(self, lo: int, hi: int) -> int:
        """Uniform on lo..hi inclusive."""
        return lo + min(int(self.u() * (hi - lo + 1)), hi - lo)

    def pick(self, items: Sequence[T]) -> T:
        return items[min(int(self.u() * len(items)), len(items) - 1)]

    def digits(self, n: int) -> str:
        """n random decimal digits; a double carries 15 of them safely."""
        chunks = []
        while n > 0:
            k = min(n, 15)
            chunks.append(f"{int(self.u() * 10**k):0{k}d}")
            n -= k
        return "".join(chunks)


class _Choice(Generic[T]):
    """A fixed weighted choice, drawn with one uniform."""

    def __init__(self, pairs: Sequence[tuple[T, float]]) -> None:
        self.items = [item for item, _ in pairs]
        self.cum = list(itertools.accumulate(w for _, w in pairs))

    def __call__(self, d: _Draw) -> T:
        i = bisect.bisect_right(self.cum, d.u() * self.cum[-1])
        return self.items[min(i, len(self.items) - 1)]


def _weighted_index(cum: Sequence[float], u: float) -> int:
    return min(bisect.bisect_right(cum, u * cum[-1]), len(cum) - 1)


# --------------------------------------------------------------------------------------------
# Profiles: population parameters


@dataclass(frozen=True)
class _Profile:
    n_regular: int  # regular customers at scale 1
    n_subscription: int
    n_suppliers: int
    n_employees: int
    n_parents: int
    rate_median: float  # invoices per month of a regular customer
    rate_sigma: float
    style_mean: tuple[float, ...]  # customers' title habits, over _STYLES
    style_concentration: float  # lower: customers differ more from each other
    ap_style_mean: tuple[float, ...]  # our accounts-payable clerks' habits
    payer_style_mean: tuple[float, ...]  # parent companies' habits
    p_batch: float  # customers who pay their invoices in batches
    p_partial_customer: float  # customers who pay some invoices in instalments
    p_credit: float  # invoices followed by a credit note that is netted into the payment
    p_factoring: float
    p_parent: float
    p_foreign: float
    p_fee_foreign: float  # foreign customers whose bank takes a fee off
    p_fee_domestic: float
    p_discount_terms: float  # customers offered an early-payment discount
    p_never: float  # invoices never paid (disputes)
    p_insolvent: float  # customers who stop paying at some date
    p_tax_missing: float
    p_iban_missing: float
    p_other_account: float
    p_name_other: float  # a transfer shows another rendering of the payer's name
    p_name_null: float
    p_standing: float  # subscription customers paying by standing order
    p_late_subscription: float
    subscription_prices: tuple[float, ...]  # gross PLN


_DEFAULT = _Profile(
    n_regular=640,
    n_subscription=200,
    n_suppliers=150,
    n_employees=28,
    n_parents=8,
    rate_median=1.55,
    rate_sigma=0.85,
    style_mean=(0.64, 0.11, 0.05, 0.04, 0.10, 0.06),
    style_concentration=4.0,
    ap_style_mean=(0.84, 0.05, 0.03, 0.02, 0.04, 0.02),
    payer_style_mean=(0.70, 0.10, 0.03, 0.02, 0.10, 0.05),
    p_batch=0.10,
    p_partial_customer=0.06,
    p_credit=0.015,
    p_factoring=0.025,
    p_parent=0.03,
    p_foreign=0.08,
    p_fee_foreign=0.35,
    p_fee_domestic=0.02,
    p_discount_terms=0.06,
    p_never=0.012,
    p_insolvent=0.02,
    p_tax_missing=0.05,
    p_iban_missing=0.10,
    p_other_account=0.06,
    p_name_other=0.06,
    p_name_null=0.015,
    p_standing=0.35,
    p_late_subscription=0.08,
    subscription_prices=(49.20, 99.00, 123.00, 199.00, 246.00, 369.00, 615.00, 1230.00, 2460.00),
)

_MESSY = _Profile(
    n_regular=460,
    n_subscription=560,
    n_suppliers=120,
    n_employees=28,
    n_parents=10,
    rate_median=1.5,
    rate_sigma=0.9,
    style_mean=(0.20, 0.09, 0.06, 0.06, 0.33, 0.26),
    style_concentration=2.0,
    ap_style_mean=(0.70, 0.08, 0.05, 0.03, 0.09, 0.05),
    payer_style_mean=(0.40, 0.10, 0.05, 0.05, 0.25, 0.15),
    p_batch=0.20,
    p_partial_customer=0.14,
    p_credit=0.05,
    p_factoring=0.12,
    p_parent=0.06,
    p_foreign=0.12,
    p_fee_foreign=0.70,
    p_fee_domestic=0.04,
    p_discount_terms=0.12,
    p_never=0.025,
    p_insolvent=0.04,
    p_tax_missing=0.15,
    p_iban_missing=0.20,
    p_other_account=0.12,
    p_name_other=0.18,
    p_name_null=0.05,
    p_standing=0.55,
    p_late_subscription=0.18,
    subscription_prices=(99.00, 123.00, 199.00, 369.00),
)

_PROFILES = {"default": _DEFAULT, "messy": _MESSY}

# After `shift_from`: this share of the reference styles' mass moves to generic/empty titles,
# this many customers without a third-party payer start paying through a factor, and amounts
# of new invoices grow (prices and order sizes).
_SHIFT_REF_LOSS = 0.6
_SHIFT_NEW_FACTORING = 0.15
_SHIFT_AMOUNT = (1.25, 1.6)
_SHIFT_SUBSCRIPTION_PRICE = 1.2

_SEASON = (0.97, 0.98, 1.03, 1.0, 1.0, 0.98, 0.95, 0.92, 1.02, 1.04, 1.03, 1.06)


# --------------------------------------------------------------------------------------------
# Calendar: days are ints (days since 1970-01-01)


def _day(y: int, m: int, d: int) -> int:
    return dt.date(y, m, d).toordinal() - _EPOCH_ORDINAL


def _date(day: int) -> dt.date:
    return dt.date.fromordinal(day + _EPOCH_ORDINAL)


def _parse_month(text: str, what: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"{what} must be YYYY-MM, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _easter(year: int) -> dt.date:
    """Gregorian Easter Sunday (the anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    g = (b - (b + 8) // 25 + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday_shift = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday_shift) // 451
    month, day = divmod(h + weekday_shift - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


def _polish_holidays(year: int) -> set[int]:
    fixed = [(1, 1), (1, 6), (5, 1), (5, 3), (8, 15), (11, 1), (11, 11), (12, 25), (12, 26)]
    if year >= 2025:  # Christmas Eve became a public holiday in 2025
        fixed.append((12, 24))
    days = {_day(year, m, d) for m, d in fixed}
    easter = _easter(year).toordinal() - _EPOCH_ORDINAL
    return days | {easter + 1, easter + 60}  # Easter Monday, Corpus Christi


class _Calendar:
    """Months of the horizon and Polish banking days (no bookings on weekends and holidays)."""

    def __init__(self, start: str, months: int) -> None:
        y, m = _parse_month(start, "start")
        self.ym: list[tuple[int, int]] = []
        self.month_starts: list[int] = []
        for k in range(months + 1):
            yy, mm = y + (m - 1 + k) // 12, (m - 1 + k) % 12 + 1
            self.ym.append((yy, mm))
            self.month_starts.append(_day(yy, mm, 1))
        self.months = months
        self.start, self.end = self.month_starts[0], self.month_starts[-1]
        holidays: set[int] = set()
        for year in range(y, self.ym[-1][0] + 2):
            holidays |= _polish_holidays(year)
        span = self.end - self.start + 400
        is_bday = [
            (self.start + k + 3) % 7 < 5 and self.start + k not in holidays for k in range(span)
        ]
        self._next = [0] * span
        following = self.start + span
        for k in range(span - 1, -1, -1):
            if is_bday[k]:
                following = self.start + k
            self._next[k] = following
        self.bdays = [
            [day for day in range(a, b) if is_bday[day - self.start]]
            for a, b in itertools.pairwise(self.month_starts)
        ]

    def next_bday(self, day: int) -> int:
        k = max(day - self.start, 0)
        return self._next[k] if k < len(self._next) else day

    def month_of(self, day: int) -> int:
        return bisect.bisect_right(self.month_starts, day) - 1

    def day_in_month(self, month: int, day_of_month: int) -> int:
        length = self.month_starts[month + 1] - self.month_starts[month]
        return self.month_starts[month] + min(day_of_month, length) - 1


# --------------------------------------------------------------------------------------------
# Names, tax ids, IBANs


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_STEM_HEADS = _words(
    "Agro Bud Euro Inter Pol Trans Med Tech Eko Stal Drew Auto Elektro Info Lux Nord Omega "
    "Delta Alfa Prim Mega Termo Hydro Kom Geo Bio Max Pro Sol Terra Vita Mar Kraj Wis Karp "
    "Tatra Baltic Silesia Mazo Warta Orion Astra Polar Kron Lech Sokół Dąb Orzeł"
)
_STEM_TAILS = _words(
    "mex pol tech bud trans med soft net tex plast max serwis system land ex car vita gaz drob "
    "mar lex tor chem stal rol data com pak met flex"
)
_DESCRIPTORS = _words(
    "Serwis Logistics Group Polska Dystrybucja Handel Systemy Consulting Budownictwo "
    "Technologie Solutions Produkcja Trading Development Energia Medical Foods Instalacje"
)
_FIRST_NAMES = _words(
    "Jan Anna Piotr Katarzyna Tomasz Małgorzata Paweł Agnieszka Krzysztof Ewa Andrzej Joanna "
    "Marek Magdalena Michał Barbara Grzegorz Zofia Łukasz Dorota Wojciech Elżbieta Jerzy Beata "
    "Rafał Żaneta Adam Monika Kamil Urszula"
)
_LAST_NAMES = _words(
    "Kowalski Nowak Wiśniewski Wójcik Kowalczyk Kamiński Lewandowski Zieliński Szymański Woźniak "
    "Dąbrowski Kozłowski Jankowski Mazur Kwiatkowski Krawczyk Piotrowski Grabowski Nowakowski "
    "Pawłowski Michalski Król Wieczorek Jabłoński Wróbel Majewski Olszewski Stępień Malinowski "
    "Górecki Ziółkowski Sikora"
)
_ACTIVITIES = (
    "Usługi Transportowe",
    "Usługi Budowlane",
    "Firma Handlowa",
    "P.H.U.",
    "F.H.U.",
    "Usługi Remontowe",
    "Biuro Rachunkowe",
    "Gabinet Stomatologiczny",
    "Warsztat Samochodowy",
    "Usługi Informatyczne",
    "Hurtownia",
    "Pracownia Projektowa",
)
_CITIES = (
    ("Warszawa", "00"),
    ("Kraków", "30"),
    ("Łódź", "90"),
    ("Wrocław", "50"),
    ("Poznań", "60"),
    ("Gdańsk", "80"),
    ("Szczecin", "70"),
    ("Bydgoszcz", "85"),
    ("Lublin", "20"),
    ("Katowice", "40"),
    ("Białystok", "15"),
    ("Kielce", "25"),
    ("Rzeszów", "35"),
    ("Olsztyn", "10"),
    ("Opole", "45"),
    ("Kalisz", "62"),
    ("Radom", "26"),
    ("Toruń", "87"),
)
_STREETS = (
    "ul. Długa",
    "ul. Polna",
    "ul. Leśna",
    "ul. Słoneczna",
    "ul. Szkolna",
    "ul. Ogrodowa",
    "ul. Lipowa",
    "al. Jerozolimskie",
    "ul. Przemysłowa",
    "ul. Fabryczna",
    "ul. Kościuszki",
    "ul. Mickiewicza",
    "ul. Piłsudskiego",
    "ul. Grunwaldzka",
)
_LEGAL_PL = _Choice(
    [
        ("Sp. z o.o.", 0.60),
        ("S.A.", 0.07),
        ("Sp. j.", 0.06),
        ("Sp. k.", 0.04),
        ("Sp. z o.o. Sp. k.", 0.05),
        ("s.c.", 0.04),
        ("", 0.14),  # sole traders
    ]
)
_LEGAL_VARIANTS = {
    "Sp. z o.o.": (
        "SP. Z O.O.",
        "SP Z O O",
        "SP. Z O. O.",
        "SP.Z O.O.",
        "SPÓŁKA Z OGRANICZONĄ ODPOWIEDZIALNOŚCIĄ",
        "SPOLKA Z OGRANICZONA ODPOWIEDZIALNOSCIA",
    ),
    "S.A.": ("S.A.", "SA", "S A", "SPÓŁKA AKCYJNA"),
    "Sp. j.": ("SP. J.", "SP.J.", "SP J", "SPÓŁKA JAWNA"),
    "Sp. k.": ("SP. K.", "SP.K.", "SP K", "SPÓŁKA KOMANDYTOWA"),
    "Sp. z o.o. Sp. k.": ("SP. Z O.O. SP.K.", "SP Z O O SP K", "SP. Z O.O. SPÓŁKA KOMANDYTOWA"),
    "s.c.": ("S.C.", "SC", "SPÓŁKA CYWILNA"),
    "GmbH": ("GMBH", "GMBH."),
    "B.V.": ("BV", "B.V."),
    "Ltd": ("LTD", "LIMITED", "LTD."),
    "Inc.": ("INC", "INC."),
    "s.r.o.": ("S.R.O.", "SRO"),
    "UAB": ("UAB",),
    "SAS": ("SAS", "S.A.S."),
}
# country: legal form, language, currency, IBAN layout ("n": digits, "a": letters), VAT id digits
_FOREIGN = {
    "DE": ("GmbH", "de", "EUR", "18n", 9),
    "NL": ("B.V.", "en", "EUR", "4a10n", 9),
    "CZ": ("s.r.o.", "en", "EUR", "20n", 8),
    "LT": ("UAB", "en", "EUR", "16n", 9),
    "FR": ("SAS", "en", "EUR", "23n", 11),
    "GB": ("Ltd", "en", "USD", "4a14n", 9),
    "US": ("Inc.", "en", "USD", "", 0),
}
_FOREIGN_CHOICE = _Choice(
    [
        ("DE", 0.35),
        ("NL", 0.12),
        ("CZ", 0.12),
        ("LT", 0.08),
        ("FR", 0.08),
        ("GB", 0.13),
        ("US", 0.12),
    ]
)
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _strip_diacritics(text: str) -> str:
    text = text.replace("ł", "l").replace("Ł", "L")
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _iban(country: str, d: _Draw) -> str | None:
    layout = "24n" if country == "PL" else _FOREIGN[country][3]  # PL: 26 digits with the check
    if not layout:
        return None  # US accounts have no IBAN
    bban = ""
    for count, kind in re.findall(r"(\d+)([an])", layout):
        n = int(count)
        bban += d.digits(n) if kind == "n" else "".join(d.pick(_LETTERS) for _ in range(n))
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


def _nip(d: _Draw) -> str:
    """A Polish tax id (NIP) with a valid check digit."""
    while True:
        digits = [d.integer(1, 9)] + [d.integer(0, 9) for _ in range(8)]
        check = sum(w * x for w, x in zip((6, 5, 7, 2, 3, 4, 5, 6, 7), digits, strict=True)) % 11
        if check != 10:
            return "".join(map(str, digits)) + str(check)


def _person(d: _Draw) -> tuple[str, str]:
    first, last = d.pick(_FIRST_NAMES), d.pick(_LAST_NAMES)
    if first.endswith("a") and last.endswith("ki"):  # Polish surnames agree in gender
        last = last[:-1] + "a"
    return first, last


def _stem(d: _Draw) -> str:
    return d.pick(_STEM_HEADS) + d.pick(_STEM_TAILS)


def _company(d: _Draw, country: str, stem: str | None = None) -> tuple[str, str, str]:
    """(full name, the part before the legal form, legal form) of a made-up company."""
    stem = stem or _stem(d)
    if country != "PL":
        legal = _FOREIGN[country][0]
        base = stem if d.chance(0.6) else f"{stem} {d.pick(('Trading', 'Systems', 'Group'))}"
        return f"{base} {legal}", base, legal
    legal = _LEGAL_PL(d)
    if not legal:
        first, last = _person(d)
        activity = d.pick(_ACTIVITIES)
        base = f"{activity} {first} {last}" if d.chance(0.6) else f"{first} {last} {activity}"
        return base, base, ""
    descriptor = d.pick(_DESCRIPTORS)
    if d.chance(0.55) or stem.lower().endswith(descriptor.lower()):
        base = stem
    else:
        base = f"{stem} {descriptor}"
    return f"{base} {legal}", base, legal


_FOREIGN_ADDRESSES = {
    "DE": (("Hauptstr.", "Industriestr.", "Bahnhofstr."), ("Berlin", "Hamburg", "Leipzig")),
    "NL": (("Keizersgracht", "Stationsweg"), ("Amsterdam", "Rotterdam", "Utrecht")),
    "CZ": (("Národní", "Průmyslová"), ("Praha", "Brno", "Ostrava")),
    "LT": (("Gedimino pr.", "Pramonės g."), ("Vilnius", "Kaunas")),
    "FR": (("rue de la Paix", "avenue Jean Jaurès"), ("Paris", "Lyon", "Lille")),
    "GB": (("High Street", "Station Road"), ("London", "Leeds", "Bristol")),
    "US": (("Main Street", "Market Street"), ("New York", "Chicago", "Austin")),
}


def _address(d: _Draw, country: str) -> str:
    if country in _FOREIGN_ADDRESSES:
        streets, cities = _FOREIGN_ADDRESSES[country]
        return f"{d.pick(streets)} {d.integer(1, 200)} {d.pick(cities)}"
    city, zip_head = d.pick(_CITIES)
    return f"{d.pick(_STREETS)} {d.integer(1, 120)} {zip_head}-{d.digits(3)} {city}"


def _statement_names(name: str, base: str, legal: str, address: str, d: _Draw) -> list[str]:
    """Ways a bank statement renders one account holder's name."""
    upper = name.upper()
    legal_variant = d.pick(_LEGAL_VARIANTS.get(legal, (legal.upper(),))) if legal else ""
    return [
        name,
        upper,
        f"{base.upper()} {legal_variant}".strip(),
        _strip_diacritics(upper),
        f"{upper} {address.upper()}"[:_NAME_LINE].rstrip(),
        upper[: max(12, min(len(upper), d.integer(16, 30)))].rstrip(),
    ]


_NAME_HABIT = (0.12, 0.30, 0.18, 0.15, 0.15, 0.10)
_NAME_HABIT_CUM = list(itertools.accumulate(_NAME_HABIT))


# --------------------------------------------------------------------------------------------
# Invoice number formats


@dataclass(frozen=True)
class _Format:
    template: str  # fields: Y (year), y (2-digit year), M (month), S (sequence), P (prefix)
    period: str  # "month" | "year": when the counter restarts
    width: int  # zero padding of the sequence number (0: none)


# Our own series (receivables): which one depends on the customer's segment.
_OUR_SERIES = {
    "FV": _Format("FV/{Y}/{M:02d}/{S}", "month", 4),
    "S": _Format("{S}/{M:02d}/{Y}", "month", 4),
    "INV": _Format("INV-{Y}-{S}", "year", 5),
    "FVE": _Format("FVE/{S}/{Y}", "year", 3),
    "FA": _Format("FA/{S}/{M:02d}/{y:02d}", "month", 5),
    "KOR": _Format("KOR/{Y}/{M:02d}/{S}", "month", 4),
    "KORE": _Format("KORE/{S}/{Y}", "year", 3),
}
_SUPPLIER_FORMATS = (
    _Format("FV/{Y}/{M:02d}/{S}", "month", 4),
    _Format("FV {S}/{M:02d}/{Y}", "month", 0),
    _Format("{S}/{M:02d}/{Y}", "month", 0),
    _Format("F/{S}/{y:02d}", "year", 5),
    _Format("FS-{S}/{Y}", "year", 4),
    _Format("{Y}/{S}", "year", 6),
    _Format("INV-{Y}-{S}", "year", 5),
    _Format("RE-{Y}{S}", "year", 5),
    _Format("{P}{y:02d}{M:02d}{S}", "month", 4),
    _Format("FA {S}/{Y}/{P}", "year", 0),
    _Format("{P}/{S}/{Y}", "year", 0),
)
_SUPPLIER_CREDIT_FORMATS = (
    _Format("KOR/{S}/{Y}", "year", 0),
    _Format("FK {S}/{Y}", "year", 0),
    _Format("KFV/{Y}/{S}", "year", 4),
    _Format("CN-{Y}-{S}", "year", 4),
)


# --------------------------------------------------------------------------------------------
# Counterparties


@dataclass(frozen=True)
class _Payer:
    """Somebody who pays on a counterparty's behalf: a parent company or a factor."""

    kind: str  # "parent" | "factoring"
    name: str
    stem: str  # a parent's subsidiaries often carry it in their names
    names: tuple[str, ...]  # statement renderings; the first is the usual one
    iban: str
    agreement: str
    style_cum: tuple[float, ...]


_NEVER = 1 << 40  # a day beyond any horizon


@dataclass(slots=True)
class _Party:
    """A customer or supplier: master data and the habits drawn once for it."""

    index: int
    id: str
    kind: str  # "regular" | "subscription" | "supplier"
    direction: str  # contract.RECEIVABLE | contract.PAYABLE
    # identity, as the finance system and the banks know it
    country: str = "PL"
    currency: str = "PLN"
    lang: str = "pl"
    name: str = ""
    tax_id: str | None = None  # master data: None when missing there
    master_iban: str | None = None
    pay_iban: str | None = None  # the account money comes from / goes to
    other_iban: str | None = None  # a second account, missing from master data
    p_other_account: float = 0.0
    other_from: int = _NEVER  # suppliers: the day from which the other account is used
    names: list[str] = field(default_factory=list)  # statement renderings of the name
    name_main: int = 0
    # invoicing
    series: str = ""  # our series for receivables
    supplier_format: _Format | None = None
    supplier_credit_format: _Format | None = None
    supplier_prefix: str = "FX"
    supplier_gap: float = 0.0  # how many invoices the supplier issues to others in between
    rate: float = 0.0  # invoices per month
    amount_mu: float = 0.0
    amount_sigma: float = 0.0
    price_list: bool = False
    plan_cents: int = 0  # subscription price
    terms: int = 14
    active_from: int = 0  # month index
    active_to: int = 0  # month index, exclusive
    p_credit: float = 0.0
    shift_amount: float = 1.0
    # paying
    delay_mu: float = 0.0  # days after the due date
    delay_sd: float = 0.0
    p_early: float = 0.0
    discount: float = 0.0
    discount_window: int = 0
    p_partial: float = 0.0
    batch_days: tuple[int, ...] = ()  # days of month; empty: no batching
    p_never: float = 0.0
    insolvent_from: int = _NEVER
    p_fee: float = 0.0
    payer: _Payer | None = None
    payer_share: float = 0.0
    shift_payer: _Payer | None = None
    standing_day: int = 0  # subscriptions by standing order; 0: pays by hand
    # writing titles
    style_cum: list[float] = field(default_factory=list)
    shifted_style_cum: list[float] = field(default_factory=list)
    mpp: bool = False  # uses the split-payment title format
    standing_kind: str = ""
    standing_title: str | None = None
    standing_ref: int = -1
    # filled while simulating
    invoices: list[int] = field(default_factory=list)
    inv_draw: _Draw | None = None


def _style_cum(probs: Sequence[float]) -> list[float]:
    return list(itertools.accumulate(probs))


def _shifted_style(probs: Sequence[float]) -> list[float]:
    moved = sum(probs[:_REF_STYLES]) * _SHIFT_REF_LOSS
    refs = [p * (1 - _SHIFT_REF_LOSS) for p in probs[:_REF_STYLES]]
    rest = probs[_REF_STYLES:]
    weight = sum(rest) or 1.0
    return _style_cum(refs + [p + moved * p / weight for p in rest])


def _dirichlet(d: _Draw, mean: Sequence[float], concentration: float) -> list[float]:
    alpha = np.maximum(np.asarray(mean) * concentration * len(mean), 0.02)
    return d.rng.dirichlet(alpha).tolist()


class _World:
    """Everything drawn once: calendar, counterparties, payers, employees, our company."""

    def __init__(self, config: SynthConfig) -> None:
        _validate(config)
        self.config = config
        self.profile = _PROFILES[config.profile]
        self.cal = _Calendar(config.start, config.months)
        self.shift_day = _NEVER
        if config.shift_from is not None:
            y, m = _parse_month(config.shift_from, "shift_from")
            self.shift_day = _day(y, m, 1)
        d = _Draw(_rng(config.seed, _STREAM_WORLD))
        self.our_name = "Cashmatch Demo Sp. z o.o."
        self.our_nip = _nip(d)
        self.our_other_iban = _iban("PL", d) or ""
        self.salary_on_last_day = d.chance(0.5)
        self.factors = [self._payer(d, "factoring", name) for name in _FACTORS]
        self.parents = [
            self._payer(d, "parent", None)
            for _ in range(max(2, round(self.profile.n_parents * config.scale)))
        ]
        self.invoices = _Invoices()
        self.parties: list[_Party] = []
        prof, scale = self.profile, config.scale
        for kind, count in (
            ("regular", max(3, round(prof.n_regular * scale))),
            ("subscription", max(2, round(prof.n_subscription * scale))),
            ("supplier", max(2, round(prof.n_suppliers * scale))),
        ):
            for _ in range(count):
                self.parties.append(self._party(kind, len(self.parties)))
        self.customers = [p for p in self.parties if p.kind != "supplier"]
        self.suppliers = [p for p in self.parties if p.kind == "supplier"]

    def _payer(self, d: _Draw, kind: str, company: tuple[str, str, str] | None) -> _Payer:
        stem = ""
        if company is None:
            stem = _stem(d)
            company = d.pick(
                (
                    (f"{stem} Holding S.A.", f"{stem} Holding", "S.A."),
                    (f"{stem} Group Sp. z o.o.", f"{stem} Group", "Sp. z o.o."),
                    (f"Grupa {stem} S.A.", f"Grupa {stem}", "S.A."),
                )
            )
        name, base, legal = company
        names = _statement_names(name, base, legal, _address(d, "PL"), d)
        usual = names[_weighted_index(_NAME_HABIT_CUM, d.u())]
        ordered = (usual, *[n for n in names if n != usual])
        mean = (0.75, 0.08, 0.02, 0.02, 0.10, 0.03) if kind == "factoring" else None
        style = _dirichlet(d, mean or self.profile.payer_style_mean, 6.0)
        agreement = f"{d.integer(10, 999)}/{d.integer(2019, 2024)}"
        return _Payer(
            kind, name, stem, ordered, _iban("PL", d) or "", agreement, tuple(_style_cum(style))
        )

    def _party(self, kind: str, index: int) -> _Party:
        d = _Draw(_rng(self.config.seed, _STREAM_PARTY, index))
        direction = contract.PAYABLE if kind == "supplier" else contract.RECEIVABLE
        party = _Party(index, f"cp-{index + 1:06d}", kind, direction)
        self._identity(party, d)
        self._invoicing(party, d)
        self._paying(party, d)
        self._writing(party, d)
        return party

    def _identity(self, party: _Party, d: _Draw) -> None:
        """Name, tax id, accounts; and who pays on the party's behalf."""
        prof, cal = self.profile, self.cal
        supplier = party.kind == "supplier"
        p_foreign = (
            prof.p_foreign * {"regular": 1.0, "subscription": 0.2, "supplier": 1.3}[party.kind]
        )
        if d.chance(p_foreign):
            party.country = _FOREIGN_CHOICE(d)
            _, party.lang, party.currency, _, _ = _FOREIGN[party.country]
        foreign = party.country != "PL"
        # third-party payers are drawn first: a parent's subsidiaries often share its name
        u_parent, u_factor, u_pick = d.u(), d.u(), d.u()
        stem = None
        if not supplier and u_parent < prof.p_parent:
            party.payer = self.parents[min(int(u_pick * len(self.parents)), len(self.parents) - 1)]
            party.payer_share = 0.7 + 0.3 * d.u()
            stem = party.payer.stem if d.chance(0.5) else None
        elif u_factor < prof.p_factoring * (0.3 if supplier else 1.0):
            party.payer = self.factors[min(int(u_pick * len(self.factors)), len(self.factors) - 1)]
            party.payer_share = 0.9
        u_shift, shift_factor = d.u(), d.pick(self.factors)
        if party.payer is None and not supplier and u_shift < _SHIFT_NEW_FACTORING:
            party.shift_payer = shift_factor

        consumer = party.kind == "subscription" and not foreign and d.chance(0.25)
        if consumer:
            first, last = _person(d)
            name, base, legal = f"{first} {last}", f"{first} {last}", ""
        else:
            name, base, legal = _company(d, party.country, stem)
        party.name = name
        party.names = _statement_names(name, base, legal, _address(d, party.country), d)
        party.name_main = _weighted_index(_NAME_HABIT_CUM, d.u())
        party.supplier_prefix = (
            "".join(ch for ch in _strip_diacritics(base).upper() if ch.isalpha())[:3] or "FX"
        )
        if foreign:
            digits = _FOREIGN[party.country][4]
            party.tax_id = f"{party.country}{d.digits(digits)}" if digits else None
        elif not consumer:
            party.tax_id = _nip(d)
        if d.chance(prof.p_tax_missing):
            party.tax_id = None
        party.pay_iban = _iban(party.country, d)
        party.master_iban = None if d.chance(prof.p_iban_missing) else party.pay_iban
        party.other_iban = _iban(party.country, d)
        party.p_other_account = d.u() * 0.5 if d.chance(prof.p_other_account) else 0.0
        if supplier and party.p_other_account > 0:
            party.other_from = cal.start + int(d.u() * (cal.end - cal.start))

    def _invoicing(self, party: _Party, d: _Draw) -> None:
        """How many invoices, of which amounts, numbered how, over which months."""
        prof, months = self.profile, self.cal.months
        supplier, foreign = party.kind == "supplier", party.currency != "PLN"
        if supplier:
            party.rate = min(math.exp(0.8 * d.z()), 20.0)
            party.amount_mu = math.log(2500.0) + 1.1 * d.z()
            party.supplier_format = d.pick(_SUPPLIER_FORMATS)
            party.supplier_credit_format = d.pick(_SUPPLIER_CREDIT_FORMATS)
            party.supplier_gap = d.u() * 12
        else:
            party.rate = min(math.exp(math.log(prof.rate_median) + prof.rate_sigma * d.z()), 40.0)
            party.amount_mu = math.log(2600.0 if foreign else 1500.0) + 0.95 * d.z()
        party.amount_sigma = 0.2 + 0.6 * d.u()
        party.price_list = d.chance(0.3)
        party.terms = d.pick((7, 14, 14, 14, 14, 21, 30, 30, 45, 60))
        if party.kind == "subscription":
            party.series = "FA"
            party.terms = d.pick((7, 14, 14))
            party.plan_cents = round(d.pick(prof.subscription_prices) * 100)
        elif foreign:
            party.series = "FVE" if d.chance(0.8) else "INV"
        elif not supplier:
            party.series = d.pick(("FV",) * 7 + ("S",) * 2 + ("INV",))
        # some counterparties join after the first month, some leave before the last
        join = d.chance(0.12) and months > 2
        party.active_from = d.integer(1, months - 1) if join else 0
        party.active_to = d.integer(party.active_from + 1, months) if d.chance(0.1) else months
        if party.kind != "subscription":
            party.p_credit = prof.p_credit * math.exp(0.5 * d.z())
        party.shift_amount = _SHIFT_AMOUNT[0] + (_SHIFT_AMOUNT[1] - _SHIFT_AMOUNT[0]) * d.u()

    def _paying(self, party: _Party, d: _Draw) -> None:
        """When and how the party pays (for suppliers: how our clerks pay them)."""
        prof, cal = self.profile, self.cal
        supplier, subscription = party.kind == "supplier", party.kind == "subscription"
        habit = d.u()  # early / on time / late / chronically late
        if habit < 0.15:
            party.delay_mu, party.p_early = -5.0, 0.6
        elif habit < 0.65:
            party.delay_mu, party.p_early = 1.0 + 4 * d.u(), 0.05
        elif habit < 0.9:
            party.delay_mu, party.p_early = 8.0 + 20 * d.u(), 0.02
        else:
            party.delay_mu, party.p_early = 30.0 + 35 * d.u(), 0.0
        party.delay_sd = 2.0 + 8.0 * d.u()
        if d.chance(prof.p_discount_terms * (1.5 if supplier else 1.0)) and not subscription:
            party.discount = d.pick((0.01, 0.02, 0.02, 0.03))
            party.discount_window = d.pick((7, 10, 14))
            party.p_early = max(party.p_early, 0.75)
        if supplier:
            partial = d.chance(prof.p_partial_customer / 3)
            party.p_partial = 0.15 + 0.3 * d.u() if partial else 0.003
            p_batch = 0.6 if party.rate > 2 else 0.25  # our clerks bundle a supplier's invoices
        else:
            partial = d.chance(prof.p_partial_customer)
            party.p_partial = 0.2 + 0.4 * d.u() if partial else 0.004
            p_batch = prof.p_batch * (2.5 if party.rate > 4 else 1.0)
        if d.chance(p_batch) and not subscription:
            party.batch_days = d.pick(((10,), (15,), (25,), (5, 20), (10, 25), (15, 30), (1, 15)))
        party.p_never = prof.p_never * (0.5 if supplier else 1.0)
        if d.chance(prof.p_insolvent) and not supplier:
            party.insolvent_from = cal.start + int(d.u() * (cal.end - cal.start))
        p_fee = prof.p_fee_foreign if party.currency != "PLN" else prof.p_fee_domestic
        if d.chance(p_fee) and not supplier:  # our own bank books its fees separately
            party.p_fee = 0.9 if party.currency != "PLN" else 0.6
        if subscription and d.chance(prof.p_standing):
            party.standing_day = d.integer(1, 28)

    def _writing(self, party: _Party, d: _Draw) -> None:
        """How the party (or our clerk, for suppliers) writes transfer titles."""
        prof, supplier = self.profile, party.kind == "supplier"
        style_mean = prof.ap_style_mean if supplier else prof.style_mean
        style = _dirichlet(d, style_mean, 25.0 if supplier else prof.style_concentration)
        party.style_cum = _style_cum(style)
        # after the shift customers give fewer references; our own clerks do not change
        party.shifted_style_cum = party.style_cum if supplier else _shifted_style(style)
        company = party.tax_id is not None and party.country == "PL"
        party.mpp = company and d.chance(0.15 if supplier else 0.12)
        party.standing_kind = d.pick(("stale", "stale", "customer", "customer", "generic", "empty"))


_FACTORS = (
    ("Faktoria Finanse Sp. z o.o.", "Faktoria Finanse", "Sp. z o.o."),
    ("EuroFaktor Polska S.A.", "EuroFaktor Polska", "S.A."),
    ("Capital Faktor Sp. z o.o.", "Capital Faktor", "Sp. z o.o."),
    ("Nordic Trade Finance Polska S.A.", "Nordic Trade Finance Polska", "S.A."),
)


def _validate(config: SynthConfig) -> None:
    if config.months < 1:
        raise ValueError(f"months must be at least 1, got {config.months}")
    if not config.scale > 0:
        raise ValueError(f"scale must be positive, got {config.scale}")
    if config.profile not in _PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {config.profile!r}")
    y, m = _parse_month(config.start, "start")
    if config.shift_from is not None:
        sy, sm = _parse_month(config.shift_from, "shift_from")
        offset = (sy - y) * 12 + sm - m
        if not 0 <= offset < config.months:
            raise ValueError(f"shift_from {config.shift_from} is outside the simulated months")


# --------------------------------------------------------------------------------------------
# Invoices


class _Invoices:
    """Invoice rows in columns; `number()` prints their numbers once all are issued."""

    def __init__(self) -> None:
        self.party: list[int] = []
        self.local: list[int] = []
        self.issue: list[int] = []
        self.due: list[int] = []
        self.cents: list[int] = []
        # before the `shift_from` price rise: decisions use it, so a shift changes amounts only
        self.base_cents: list[int] = []
        self.credit_of: list[int] = []  # for a credit note: the row of its invoice, else -1
        self.number_text: list[str] = []
        self.seq_text: list[str] = []
        self.credit_for: dict[int, int] = {}  # invoice row -> its credit note row
        self.order: list[int] = []  # rows in id order

    def add(
        self,
        party: _Party,
        issue: int,
        due: int,
        cents: int,
        base_cents: int,
        credit_of: int = -1,
    ) -> int:
        row = len(self.party)
        self.party.append(party.index)
        self.local.append(len(party.invoices))
        self.issue.append(issue)
        self.due.append(due)
        self.cents.append(cents)
        self.base_cents.append(base_cents)
        self.credit_of.append(credit_of)
        party.invoices.append(row)
        if credit_of >= 0:
            self.credit_for[credit_of] = row
        return row

    def number(self, world: _World) -> None:
        """Print invoice numbers: counters per series and period, in issue order."""
        n = len(self.party)
        self.order = sorted(range(n), key=lambda r: (self.issue[r], self.party[r], self.local[r]))
        self.number_text = [""] * n
        self.seq_text = [""] * n
        counters: dict[tuple[object, ...], int] = {}
        started: set[tuple[int, bool]] = set()
        for row in self.order:
            party = world.parties[self.party[row]]
            year, month = world.cal.ym[world.cal.month_of(self.issue[row])]
            credit = self.credit_of[row] >= 0
            if party.kind == "supplier":
                fmt = party.supplier_credit_format if credit else party.supplier_format
                assert fmt is not None
                key: tuple[object, ...] = (
                    party.index,
                    credit,
                    year,
                    month if fmt.period == "month" else 0,
                )
                d = party.inv_draw
                assert d is not None
                # suppliers number invoices to all their clients: we see gaps
                step = 1 + int(d.u() * 2 * party.supplier_gap)
                offset = d.u() * (
                    200 if (party.index, credit) not in started else party.supplier_gap
                )
                started.add((party.index, credit))
                counters[key] = seq = counters[key] + step if key in counters else 1 + int(offset)
            else:
                series = ("KORE" if party.series in ("FVE",) else "KOR") if credit else party.series
                fmt = _OUR_SERIES[series]
                key = (series, year, month if fmt.period == "month" else 0)
                counters[key] = seq = counters.get(key, 0) + 1
            seq_text = f"{seq:0{fmt.width}d}" if fmt.width else str(seq)
            self.seq_text[row] = seq_text
            self.number_text[row] = fmt.template.format(
                Y=year, y=year % 100, M=month, S=seq_text, P=party.supplier_prefix
            )


_PRICE_LIST_NET = (49, 99, 149, 199, 249, 299, 399, 499, 799, 999, 1499, 1999, 2499, 4999)
_QUANTITIES = (1, 1, 1, 1, 2, 2, 3, 4, 5, 10)


def _issue_invoices(world: _World, party: _Party) -> None:
    """Issue a counterparty's invoices (and credit notes) over the horizon, in date order."""
    cal, inv = world.cal, world.invoices
    d = _Draw(_rng(world.config.seed, _STREAM_INVOICES, party.index))
    party.inv_draw = d
    months = range(party.active_from, party.active_to)
    if party.kind == "subscription":
        for m in months:
            issue = cal.bdays[m][0]
            cents = party.plan_cents
            if issue >= world.shift_day:
                cents = round(cents * _SHIFT_SUBSCRIPTION_PRICE / 100) * 100
            inv.add(party, issue, issue + party.terms, cents, party.plan_cents)
        return
    lam = np.array([party.rate * _SEASON[cal.ym[m][1] - 1] for m in months])
    counts = d.rng.poisson(lam).tolist() if len(lam) else []
    domestic = party.currency == "PLN"
    for m, count in zip(months, counts, strict=True):
        issued = []
        for _ in range(count):
            issue = d.pick(cal.bdays[m])
            u_list, u_round, qty, price, z = d.u(), d.u(), d.pick(_QUANTITIES), d.u(), d.z()
            if party.price_list and u_list < 0.6:
                net = float(qty * _PRICE_LIST_NET[min(int(price * len(_PRICE_LIST_NET)), 13)])
            else:
                net = math.exp(party.amount_mu + party.amount_sigma * z)
                if u_round < 0.15:  # round net amounts: lump-sum services
                    net = round(net, -2 if net > 1000 else -1) or 10.0
            base_net = max(round(net * 100), 1000)
            net_cents = base_net
            if issue >= world.shift_day:
                net_cents = round(base_net * party.shift_amount)
            terms = party.terms if d.u() < 0.9 else d.pick((7, 14, 30))
            issued.append((issue, base_net, net_cents, terms))
        issued.sort()
        for issue, base_net, net_cents, terms in issued:
            base = (base_net * 123 + 50) // 100 if domestic else base_net  # gross: 23% VAT
            cents = (net_cents * 123 + 50) // 100 if domestic else net_cents
            row = inv.add(party, issue, issue + terms, cents, base)
            u_credit, u_lag, u_share = d.u(), d.u(), d.u()
            if u_credit < party.p_credit:
                credit_day = cal.next_bday(issue + 3 + int(u_lag * 18))
                share = 0.05 + 0.4 * u_share
                credit = -max(round(cents * share), 100)
                base_credit = -max(round(base * share), 100)
                if credit_day < cal.end:
                    due = credit_day + party.terms
                    inv.add(party, credit_day, due, credit, base_credit, credit_of=row)


# --------------------------------------------------------------------------------------------
# Payment planning: which invoices each transfer pays, and when


@dataclass(slots=True)
class _Pending:
    """A transfer decided but not yet written: titles and names come later, in date order."""

    booking: int
    seq: int
    items: list[tuple[int, int]]  # (invoice row, cents applied)
    kind: str  # "single" | "collective" | "partial" | "no_invoice"
    notes: list[str]
    u_payer: float
    matched_after: int  # seconds after the booking day's midnight
    inst: tuple[int, int] = (0, 0)  # (k, n) of an instalment
    # a transfer that pays nothing: (name, iban, title, cents, currency)
    fixed: tuple[str | None, str | None, str | None, int, str] | None = None


def _matched_after(d: _Draw) -> int:
    # reviewed one to eight days later, during office hours
    return (1 + int(d.u() * 8)) * 86400 + 8 * 3600 + int(d.u() * 9 * 3600)


def _pay_day(party: _Party, issue: int, due: int, d: _Draw) -> int:
    """The day a counterparty means to pay an invoice (before banking days and batching)."""
    u_early, u_days, z = d.u(), d.u(), d.z()
    if u_early < party.p_early:
        window = party.discount_window or 7
        return issue + int(u_days * (window + 1))
    return max(issue, due + round(party.delay_mu + party.delay_sd * z))


def _split_instalments(total: int, n: int, u_style: float) -> list[int]:
    if u_style < 0.5 or total < 40000:
        base = total // n
        return [base] * (n - 1) + [total - base * (n - 1)]
    first = max(10000, (round(total * (0.3 + 0.3 * u_style) / 10000)) * 10000)
    rest = total - first
    base = rest // (n - 1)
    return [first] + [base] * (n - 2) + [rest - base * (n - 2)]


def _instalments(
    world: _World, party: _Party, row: int, start: int, d: _Draw
) -> list[tuple[int, int, int, int]]:
    """(booking, cents, k, n) of an instalment plan; the last part may never come."""
    u_n, u_style, u_incomplete, g1, g2 = d.u(), d.u(), d.u(), d.u(), d.u()
    cents = world.invoices.cents[row]
    n = 2 if u_n < 0.7 else 3
    if world.invoices.base_cents[row] < n * 5000:
        return []
    parts = _split_instalments(cents, n, u_style)
    days = [start, start + 20 + int(g1 * 25), start + 45 + int(g1 * 25) + int(g2 * 20)]
    if u_incomplete < 0.2:
        parts = parts[:-1]  # a disputed rest: the invoice stays partly open
    return [
        (world.cal.next_bday(day), part, k + 1, n)
        for k, (day, part) in enumerate(zip(days, parts, strict=False))
    ]


def _next_batch_day(cal: _Calendar, day: int, batch_days: tuple[int, ...]) -> int:
    m = cal.month_of(day)
    for month in (m, m + 1):
        if month >= cal.months:
            break
        for dom in batch_days:
            candidate = cal.day_in_month(month, dom)
            if candidate >= day:
                return candidate
    return cal.end


def _group_transfer(
    world: _World, party: _Party, booking: int, rows: list[int], seq: int, d: _Draw
) -> _Pending:
    """One transfer paying `rows` (invoices and their credit notes) in full."""
    inv = world.invoices
    u_unjust, u_fee, u_fee_size = d.u(), d.u(), d.u()
    items: list[tuple[int, int]] = []
    notes: list[str] = []
    discounted = False
    for row in rows:
        cents = inv.cents[row]
        if cents > 0 and party.discount > 0:
            in_time = booking <= inv.issue[row] + party.discount_window + 2
            if in_time or u_unjust < 0.05:
                cents -= round(cents * party.discount)
                discounted = True
        items.append((row, cents))
    if discounted:
        notes.append("early_discount")
    if u_fee < party.p_fee:
        fees: tuple[int, ...] = (500, 750, 1000, 1200, 1500, 1750, 2000, 2500)
        if party.currency == "PLN":
            fees = (500, 1000, 1500, 2000, 2500)
        fee = fees[min(int(u_fee_size * len(fees)), len(fees) - 1)]
        largest = max(range(len(items)), key=lambda i: (items[i][1], -i))
        if fee * 2 < items[largest][1]:
            row, cents = items[largest]
            items[largest] = (row, cents - fee)
            notes.append("bank_fee")
    if any(inv.credit_of[row] >= 0 for row in rows):
        notes.append("credit_note")
    kind = "collective" if len(rows) > 1 else "single"
    return _Pending(booking, seq, items, kind, notes, d.u(), _matched_after(d))


def _add_instalments(
    pending: list[_Pending], row: int, plan: list[tuple[int, int, int, int]], end: int, d: _Draw
) -> None:
    for booking, cents, k, n in plan:
        if booking < end:
            pending.append(
                _Pending(
                    booking=booking,
                    seq=len(pending),
                    items=[(row, cents)],
                    kind="partial",
                    notes=[],
                    u_payer=d.u(),
                    matched_after=_matched_after(d),
                    inst=(k, n),
                )
            )


def _add_grouped(
    world: _World,
    party: _Party,
    to_pay: list[tuple[int, int]],
    max_items: int,
    pending: list[_Pending],
    d: _Draw,
) -> None:
    """Invoices due on the same day become one transfer if the party batches, else one each."""
    credit_for = world.invoices.credit_for
    size = max_items if party.batch_days else 1
    for booking, group in itertools.groupby(sorted(to_pay), key=lambda x: x[0]):
        rows = [row for _, row in group]
        for i in range(0, len(rows), size):
            # a credit note is always netted with its invoice
            with_credits = [r for row in rows[i : i + size] for r in (row, credit_for.get(row, -1))]
            rows_paid = [r for r in with_credits if r >= 0]
            pending.append(_group_transfer(world, party, booking, rows_paid, len(pending), d))


def _plan_regular_customer(world: _World, party: _Party) -> list[_Pending]:
    """Customers pay invoice by invoice, or in batches on fixed days of the month."""
    cal, inv = world.cal, world.invoices
    d = _Draw(_rng(world.config.seed, _STREAM_PLAN, party.index))
    end = min(cal.end, party.insolvent_from)
    pending: list[_Pending] = []
    to_pay: list[tuple[int, int]] = []  # (booking, row)
    for row in party.invoices:
        if inv.credit_of[row] >= 0:
            continue
        u_never, u_partial = d.u(), d.u()
        day = _pay_day(party, inv.issue[row], inv.due[row], d)
        credit = inv.credit_for.get(row, -1)
        if credit >= 0:
            day = max(day, inv.issue[credit])
        plan = _instalments(world, party, row, day, d)
        if u_never < party.p_never or inv.due[row] >= party.insolvent_from:
            continue
        if u_partial < party.p_partial and credit < 0 and plan:
            _add_instalments(pending, row, plan, end, d)
            continue
        if party.batch_days:
            day = _next_batch_day(cal, day, party.batch_days)
        booking = cal.next_bday(day)
        if booking < end:
            to_pay.append((booking, row))
    _add_grouped(world, party, to_pay, 12, pending, d)
    return pending


def _plan_subscription(world: _World, party: _Party) -> list[_Pending]:
    """Subscription customers pay the oldest open invoice each month; late ones catch up."""
    cal, inv = world.cal, world.invoices
    d = _Draw(_rng(world.config.seed, _STREAM_PLAN, party.index))
    pending: list[_Pending] = []
    open_rows: list[int] = []
    issued = 0
    by_hand = not party.standing_day
    p_late = world.profile.p_late_subscription * (1.0 if by_hand else 0.3)
    for m in range(party.active_from, cal.months):
        u_skip, u_catch, u_newest, z = d.u(), d.u(), d.u(), d.z()
        u_payer, matched = d.u(), _matched_after(d)
        if by_hand:
            day = cal.bdays[m][0] + party.terms + round(party.delay_mu + party.delay_sd * z)
        else:
            day = cal.day_in_month(m, party.standing_day)
        booking = cal.next_bday(max(day, cal.month_starts[m]))
        if booking >= min(cal.end, party.insolvent_from):
            break
        while issued < len(party.invoices) and inv.issue[party.invoices[issued]] <= booking:
            open_rows.append(party.invoices[issued])
            issued += 1
        if not open_rows or u_skip < p_late:
            continue  # forgot or short of money: two invoices with the same amount are open
        if len(open_rows) >= 2 and by_hand and u_catch < 0.6:
            chosen = open_rows[:3]
        elif len(open_rows) >= 2 and by_hand and u_newest < 0.15:
            chosen = [open_rows[-1]]  # pays the newest invoice; the older one stays open
        else:
            chosen = [open_rows[0]]
        open_rows = [row for row in open_rows if row not in chosen]
        items = [(row, inv.cents[row]) for row in chosen]
        kind = "collective" if len(items) > 1 else "single"
        pending.append(
            _Pending(booking, len(pending), items, kind, ["subscription"], u_payer, matched)
        )
    return pending


def _plan_supplier(world: _World, party: _Party) -> list[_Pending]:
    """We pay suppliers in payment runs on Tuesdays and Fridays, close to the due date."""
    cal, inv = world.cal, world.invoices
    d = _Draw(_rng(world.config.seed, _STREAM_PLAN, party.index))
    pending: list[_Pending] = []
    to_pay: list[tuple[int, int]] = []
    for row in party.invoices:
        if inv.credit_of[row] >= 0:
            continue
        u_never, u_partial, u_mode, u_recv, u_early, z = d.u(), d.u(), d.u(), d.u(), d.u(), d.z()
        issue, due = inv.issue[row], inv.due[row]
        received = issue + 1 + int(u_recv * 6)  # the paper / e-mail reaches us later
        if party.discount > 0 and u_mode < 0.85:
            day = issue + int(u_early * party.discount_window)
        elif u_mode < 0.8:
            day = due - int(u_early * 4)
        else:
            day = due + round(abs(z) * 15)
        credit = inv.credit_for.get(row, -1)
        day = max(day, received, inv.issue[credit] + 1 if credit >= 0 else 0)
        booking = _payment_run(cal, day)
        plan = [
            (_payment_run(cal, b), cents, k, n)
            for b, cents, k, n in _instalments(world, party, row, booking, d)
        ]
        if u_never < party.p_never:
            continue
        if u_partial < party.p_partial and credit < 0 and plan:
            _add_instalments(pending, row, plan, cal.end, d)
        elif booking < cal.end:
            to_pay.append((booking, row))
    _add_grouped(world, party, to_pay, 8, pending, d)
    if party.currency != "PLN":
        _add_foreign_payment_charges(pending, cal.end, d)
    return pending


def _add_foreign_payment_charges(pending: list[_Pending], end: int, d: _Draw) -> None:
    """Our bank charges each foreign payment separately, the same day, in PLN."""
    for p in list(pending):
        if p.booking >= end:
            continue
        fee = 2000 + 500 * int(d.u() * 12)
        title = d.pick(
            (
                "Prowizja od przelewu zagranicznego",
                "Opłata SWIFT",
                "PROWIZJA ZA PRZELEW SEPA/SWIFT",
            )
        )
        pending.append(
            _Pending(
                booking=p.booking,
                seq=len(pending),
                items=[],
                kind="no_invoice",
                notes=["bank_charge"],
                u_payer=0.0,
                matched_after=0,
                fixed=(None, None, title, fee, "PLN"),
            )
        )


def _payment_run(cal: _Calendar, day: int) -> int:
    """Our payment runs are on Tuesdays and Fridays (or the next banking day)."""
    weekday = (day + 3) % 7
    ahead = min((target - weekday) % 7 for target in (1, 4))
    return cal.next_bday(day + ahead)


# --------------------------------------------------------------------------------------------
# Titles


def _choices(*pairs: tuple[str, float]) -> _Choice[str]:
    return _Choice(list(pairs))


# Templates per language; fields are filled lazily by _Fields.
_TEMPLATES: dict[str, dict[str, _Choice[str]]] = {
    "pl": {
        "single": _choices(
            ("{ref}", 3),
            ("Faktura {ref}", 2),
            ("Faktura nr {ref}", 1.5),
            ("Faktura VAT {ref}", 0.5),
            ("FV {ref}", 0.4),
            ("Zapłata za fakturę {ref}", 1.5),
            ("zapłata za fakturę nr {ref}", 1),
            ("Płatność za fakturę {ref}", 1),
            ("Opłata za fakturę {ref}", 0.4),
            ("{ref} zamówienie {order}", 0.5),
            ("{ref} z dnia {issue}", 0.5),
            ("{name} {ref}", 0.4),
            ("{ref} {name}", 0.3),
            ("Przelew {ref}", 0.3),
            ("{ref} dziękujemy", 0.2),
            ("Za fakturę {ref}", 0.4),
            ("{ref} NIP {tax}", 0.3),
            ("{ref} kwota {amount}", 0.3),
        ),
        "multi": _choices(
            ("{refs}", 3),
            ("Faktury {refs}", 2),
            ("Zapłata za faktury {refs}", 1.5),
            ("Płatność za faktury: {refs}", 1),
            ("FV {refs}", 0.7),
            ("Faktury nr {refs}", 1),
            ("{name} faktury {refs}", 0.3),
        ),
        "partial": _choices(
            ("{ref} rata {k}", 2),
            ("Rata {k}/{n} {ref}", 1.5),
            ("{k} rata za fakturę {ref}", 1),
            ("częściowa zapłata {ref}", 1.5),
            ("{ref} część {k}", 1),
            ("zaliczka na poczet {ref}", 0.3),
            ("dopłata do {ref}", 0.5),
            ("{ref}", 1),
        ),
        "credit": _choices(
            ("{ref} - {cn}", 2),
            ("{ref} pomniejszona o korektę {cn}", 1.5),
            ("{ref} minus korekta {cn}", 1),
            ("Faktura {ref} korekta {cn}", 1),
            ("{ref}", 2),
            ("{ref} po korekcie", 1),
            ("{ref}, {cn}", 1),
        ),
        "subscription": _choices(
            ("{ref}", 2),
            ("Abonament {ref}", 2),
            ("Faktura {ref} abonament {month}", 1),
            ("opłata za {month} {ref}", 1),
            ("{ref} abonament", 1),
        ),
        "generic": _choices(
            ("Faktura", 1.5),
            ("zapłata za fakturę", 1.5),
            ("Płatność", 1),
            ("przelew", 1),
            ("Zapłata", 1),
            ("zapłata za towar", 1),
            ("Usługa", 0.4),
            ("Zamówienie {order}", 1),
            ("zamówienie nr {order}", 0.6),
            ("rozliczenie {mm}/{yyyy}", 0.6),
            ("Płatność za {month}", 0.5),
            ("{name}", 0.8),
            ("nr klienta {cust}", 0.5),
            ("Należność", 0.4),
            ("Przelew środków", 0.4),
            ("faktura z dnia {issue}", 0.5),
            ("zapłata kwota {amount}", 0.3),
        ),
        "generic_multi": _choices(
            ("Płatność zbiorcza", 2),
            ("Zapłata wg awizo {adv}", 1),
            ("zapłata faktur {month}", 1.5),
            ("Faktury", 1),
            ("płatność za faktury", 1.5),
            ("rozliczenie {mm}/{yyyy}", 1),
            ("{name}", 0.5),
            ("zestawienie {adv}", 0.5),
        ),
        "generic_subscription": _choices(
            ("Abonament", 2),
            ("abonament {month}", 2),
            ("opłata abonamentowa", 1),
            ("Opłata miesięczna", 1),
            ("abonament nr klienta {cust}", 1),
            ("{name}", 0.5),
        ),
        "generic_partial": _choices(
            ("rata {k}", 1),
            ("częściowa płatność", 1),
            ("Rata", 1),
            ("dopłata", 0.5),
            ("zaliczka", 0.3),
        ),
    },
    "en": {
        "single": _choices(
            ("{ref}", 3),
            ("Invoice {ref}", 2),
            ("Payment for invoice {ref}", 1.5),
            ("Inv. {ref}", 0.7),
            ("INVOICE NO {ref}", 0.5),
            ("{ref} PO {po}", 0.6),
            ("Payment {ref} {name}", 0.4),
            ("Invoice {ref} dated {issue_iso}", 0.4),
        ),
        "multi": _choices(
            ("{refs}", 2),
            ("Invoices {refs}", 2),
            ("Payment for invoices {refs}", 1.5),
            ("INV {refs}", 0.5),
        ),
        "partial": _choices(
            ("Instalment {k} invoice {ref}", 2),
            ("Partial payment {ref}", 2),
            ("{ref} part {k}/{n}", 1),
            ("{ref}", 1),
        ),
        "credit": _choices(
            ("{ref} less credit note {cn}", 2),
            ("Invoice {ref} CN {cn}", 1.5),
            ("{ref}", 2),
        ),
        "subscription": _choices(("{ref}", 2), ("Subscription {ref}", 2)),
        "generic": _choices(
            ("Payment", 2),
            ("Invoice payment", 1.5),
            ("Payment {po}", 1),
            ("Supplier payment", 1),
            ("PAYMENT ADVICE {adv}", 0.7),
            ("Remittance {adv}", 0.7),
            ("{name}", 0.5),
        ),
        "generic_multi": _choices(
            ("Payment advice {adv}", 2),
            ("Invoices {month_en}", 1),
            ("Payment run {issue_iso}", 1),
            ("Remittance {adv}", 1),
        ),
        "generic_subscription": _choices(("Subscription", 2), ("Monthly fee {month_en}", 1)),
        "generic_partial": _choices(("Partial payment", 2), ("Instalment {k}", 1)),
    },
    "de": {
        "single": _choices(
            ("Rechnung {ref}", 2),
            ("RG {ref}", 1),
            ("Rechnung Nr. {ref}", 1),
            ("{ref}", 1.5),
            ("Re. {ref} vom {issue}", 0.5),
        ),
        "multi": _choices(("Rechnungen {refs}", 2), ("{refs}", 1.5), ("RG {refs}", 1)),
        "partial": _choices(("Teilzahlung {ref}", 2), ("Rate {k} Rechnung {ref}", 1)),
        "credit": _choices(("Rechnung {ref} abzgl. Gutschrift {cn}", 2), ("{ref}", 1)),
        "subscription": _choices(("Abo {ref}", 1), ("{ref}", 1)),
        "generic": _choices(("Zahlung", 1), ("Rechnungsausgleich", 1), ("Überweisung", 1)),
        "generic_multi": _choices(("Sammelzahlung", 2), ("Zahlungsavis {adv}", 1)),
        "generic_subscription": _choices(
            ("Abonnement", 1),
        ),
        "generic_partial": _choices(
            ("Teilzahlung", 1),
        ),
    },
}
_EMPTY: _Choice[str | None] = _Choice([(None, 6), ("", 2.5), ("-", 1), (".", 0.5)])
_JOINERS = _choices((", ", 3), (" ", 2), ("; ", 1), (",", 1), (" i ", 0.3))
_FACTOR_WRAP = _choices(
    ("FAKTORING UMOWA {agr} {body}", 1),
    ("{body} / dłużnik {sub}", 1),
    ("Płatność w imieniu {sub} {body}", 1),
    ("{agr} {body}", 1),
    ("{body}", 1),
)
_PARENT_WRAP = _choices(
    ("{body}", 3), ("{body} za {sub}", 1), ("w imieniu {sub}: {body}", 1), ("{sub} {body}", 1)
)
_ASSIGNMENT_WRAP = _choices(
    ("{body}", 2),
    ("{body} cesja wierzytelności", 1),
    ("{body} umowa cesji {agr}", 1),
    ("{body} dostawca {sub}", 1),
)
_MPP = "/VAT/{vat}/IDC/{idc}/INV/{ref}/TXT/{txt}"
_MONTHS_PL = _words(
    "styczeń luty marzec kwiecień maj czerwiec lipiec sierpień wrzesień październik listopad "
    "grudzień"
)
_MONTHS_EN = _words(
    "January February March April May June July August September October November December"
)
_TOKEN = re.compile(r"[A-Za-z]+|\d+|[^A-Za-z\d]+")
_REFORMAT_OPS = ("sep_space", "sep_dash", "sep_none", "sep_dot", "lower", "zeros", "no_prefix")
_SEPARATORS = {"sep_space": " ", "sep_dash": "-", "sep_none": "", "sep_dot": "."}
_CONFUSABLE = {"0": "O", "O": "0", "1": "l", "l": "1", "5": "S", "8": "B", "I": "1"}


def _is_separator(token: str) -> bool:
    return not token[:1].isalnum()


def _reformat(number: str, ops: Sequence[str]) -> str:
    """The number as somebody retyped it: other separators, lowercase, zeros or prefix gone."""
    tokens = _TOKEN.findall(number)
    for op in ops:
        if op in _SEPARATORS:
            tokens = [_SEPARATORS[op] if _is_separator(t) else t for t in tokens]
        elif op == "lower":
            tokens = [t.lower() for t in tokens]
        elif op == "zeros":
            tokens = [(t.lstrip("0") or "0") if t.isdigit() else t for t in tokens]
        elif op == "no_prefix" and len(tokens) > 2 and tokens[0].isalpha():
            tokens = tokens[2:] if _is_separator(tokens[1]) else tokens[1:]
    return "".join(tokens)


def _typo(text: str, d: _Draw) -> str:
    """One slip of the finger, mostly in the digits."""
    digits = [i for i, c in enumerate(text) if c.isdigit()]
    for _ in range(4):
        i = d.pick(digits) if digits and d.u() < 0.8 else d.integer(0, len(text) - 1)
        op = d.u()
        if op < 0.3 and len(text) > 1:
            j = min(i, len(text) - 2)
            new = text[:j] + text[j + 1] + text[j] + text[j + 2 :]
        elif op < 0.55 and len(text) > 3:
            new = text[:i] + text[i + 1 :]
        elif op < 0.85:
            c = text[i]
            if c.isdigit():
                repl = str((int(c) + d.integer(1, 9)) % 10)
            elif c.isalpha():
                repl = d.pick(_LETTERS)
                repl = repl if c.isupper() else repl.lower()
            else:
                repl = d.pick(("/", "-", " ", "."))
            new = text[:i] + repl + text[i + 1 :]
        elif op < 0.95:
            new = text[:i] + text[i] + text[i:]
        else:
            new = text[:i] + _CONFUSABLE.get(text[i], text[i]) + text[i + 1 :]
        if new != text:
            return new
    return text + text[-1]


def _polish_amount(cents: int, d: _Draw) -> str:
    whole, rest = divmod(cents, 100)
    style = d.u()
    if style < 0.4:
        return f"{whole:,}".replace(",", " ") + f",{rest:02d} zł"
    if style < 0.8:
        return f"{whole},{rest:02d}"
    return f"{whole}.{rest:02d} PLN"


class _Fields(dict[str, str]):
    """Template fields, computed (and drawn) only when a template asks for them."""

    def __init__(
        self, world: _World, party: _Party, payer: _Payer | None, p: _Pending, d: _Draw
    ) -> None:
        super().__init__()
        self.world, self.party, self.payer, self.p, self.d = world, party, payer, p, d

    def __missing__(self, key: str) -> str:
        value = self._compute(key)
        self[key] = value
        return value

    def _compute(self, key: str) -> str:
        world, party, p, d = self.world, self.party, self.p, self.d
        first = p.items[0][0] if p.items else -1
        issue = _date(world.invoices.issue[first]) if first >= 0 else _date(p.booking)
        cents = sum(c for _, c in p.items)
        if key in ("name", "sub"):
            name = party.names[party.name_main] if key == "sub" else party.name
            return name if d.u() < 0.6 else name.upper()
        if key == "order":
            return d.pick((f"{d.integer(1000, 99999)}", f"ZAM/{d.integer(1, 999)}/{issue:%y}"))
        if key in ("po", "adv"):
            return f"{'PO' if key == 'po' else 'AV'}{d.digits(d.integer(5, 8))}"
        if key == "issue":
            return f"{issue:%d.%m.%Y}"
        if key == "issue_iso":
            return f"{issue:%Y-%m-%d}"
        if key in ("month", "month_en"):
            return (_MONTHS_PL if key == "month" else _MONTHS_EN)[issue.month - 1]
        if key == "mm":
            return f"{issue:%m}"
        if key == "yyyy":
            return f"{issue:%Y}"
        if key == "amount":
            return _polish_amount(cents, d)
        if key == "tax":
            return party.tax_id or ""
        if key == "cust":
            return party.id.removeprefix("cp-").lstrip("0").zfill(5)
        if key in ("k", "n"):
            return str(p.inst[0] if key == "k" else p.inst[1])
        if key == "agr":
            return self.payer.agreement if self.payer else ""
        if key == "vat":
            vat = round(cents * 23 / 123)
            return f"{vat // 100},{vat % 100:02d}"
        if key == "idc":
            if party.direction == contract.RECEIVABLE:
                return world.our_nip
            return party.tax_id or world.our_nip
        if key == "txt":
            return d.pick(("zapłata", "faktura", "płatność", "FV", ""))
        raise KeyError(key)


def _style_for(party: _Party, payer: _Payer | None, booking: int, world: _World, u: float) -> str:
    if payer is not None and party.direction == contract.RECEIVABLE:
        cum: Sequence[float] = payer.style_cum  # the payer writes the title
    elif booking >= world.shift_day:
        cum = party.shifted_style_cum
    else:
        cum = party.style_cum
    return _STYLES[_weighted_index(cum, u)]


def _render_refs(world: _World, rows: list[int], style: str, d: _Draw) -> list[str]:
    inv = world.invoices
    numbers = [inv.number_text[row] for row in rows]
    if style == "exact":
        return numbers
    if style == "sequence_only":
        strip = d.u() < 0.6
        forms = [
            (inv.seq_text[row].lstrip("0") or "0") if strip else inv.seq_text[row] for row in rows
        ]
        if len(forms) == 1:
            return [d.pick(("{s}", "{s}", "nr {s}", "fv {s}")).format(s=forms[0])]
        return forms
    ops = [d.pick(_REFORMAT_OPS)]
    if d.u() < 0.3:
        ops.append(d.pick(_REFORMAT_OPS))
    if style == "reformatted":
        return [_reformat(n, ops) for n in numbers]
    # a typo in one of the references, sometimes on top of retyping
    retyped = [_reformat(n, ops) for n in numbers] if d.u() < 0.3 else list(numbers)
    k = d.integer(0, len(retyped) - 1)
    retyped[k] = _typo(retyped[k], d)
    return retyped


def _ref_label(world: _World, rows: list[int], refs: list[str], style: str) -> str:
    numbers = [world.invoices.number_text[row] for row in rows]
    if style in ("reformatted", "typo") and refs == numbers:
        return "ref_exact"
    return "ref_" + style


def _standing_title(world: _World, party: _Party, p: _Pending, d: _Draw) -> tuple[str | None, str]:
    """A standing order repeats the title typed when it was set up, whatever it pays."""
    if party.standing_title is None and party.standing_ref < 0:
        row = p.items[0][0]
        kind = party.standing_kind
        if kind == "stale":
            party.standing_ref = row
            number = world.invoices.number_text[row]
            party.standing_title = d.pick(("Abonament {r}", "{r}", "FA {r} abonament")).format(
                r=number
            )
        elif kind == "customer":
            party.standing_title = d.pick(
                ("Abonament nr klienta {c}", "ID klienta {c}", "abonament {c}")
            ).format(c=party.id.removeprefix("cp-").lstrip("0").zfill(5))
        elif kind == "generic":
            party.standing_title = d.pick(("Abonament", "opłata abonamentowa", "Zlecenie stałe"))
        else:
            party.standing_title = ""
    title = party.standing_title or None
    if party.standing_kind == "stale":
        return title, "ref_exact" if p.items[0][0] == party.standing_ref else "ref_stale"
    if party.standing_kind == "empty":
        return title, "ref_empty"
    return title, "ref_generic"


def _render_title(
    world: _World, party: _Party, payer: _Payer | None, p: _Pending, d: _Draw
) -> tuple[str | None, list[str]]:
    """The remittance text of one transfer and its reference labels."""
    if party.standing_day and payer is None:
        title, label = _standing_title(world, party, p, d)
        return title, [label]
    style = _style_for(party, payer, p.booking, world, d.u())
    if style == "empty":
        return _EMPTY(d), ["ref_empty"]
    inv = world.invoices
    lang = party.lang
    if party.direction == contract.PAYABLE and lang != "pl":
        lang = "en"  # our clerks write to foreign suppliers in English
    templates = _TEMPLATES[lang]
    positives = [row for row, _ in p.items if inv.cents[row] > 0]
    credits = [row for row, _ in p.items if inv.cents[row] < 0]
    fields = _Fields(world, party, payer, p, d)
    subscription = "subscription" in p.notes
    refs: list[str] = []
    if style == "generic":
        if p.kind == "partial":
            template = templates["generic_partial"](d)
        elif subscription:
            template = templates["generic_subscription"](d)
        elif len(positives) > 1:
            template = templates["generic_multi"](d)
        else:
            template = templates["generic"](d)
        label = "ref_generic"
    else:
        refs = _render_refs(world, positives, style, d)
        label = _ref_label(world, positives, refs, style)
        cn_refs = _render_refs(world, credits, "exact" if style == "typo" else style, d)
        listed = refs + (cn_refs if d.u() < 0.5 else [])
        fields["ref"] = refs[0]
        fields["refs"] = _JOINERS(d).join(listed)
        fields["cn"] = ", ".join(cn_refs)
        if p.kind == "partial":
            template = templates["partial"](d)
        elif credits and len(positives) == 1:
            template = templates["credit"](d)
        elif len(positives) > 1 or credits:
            template = templates["multi"](d)
        elif subscription:
            template = templates["subscription"](d)
        elif party.mpp and d.u() < 0.8:
            template = _MPP
        else:
            template = templates["single"](d)
    title = template.format_map(fields)
    if payer is not None:
        if party.direction == contract.PAYABLE:
            wrap = _ASSIGNMENT_WRAP(d)  # we pay the factor a supplier assigned its invoices to
        else:
            wrap = (_FACTOR_WRAP if payer.kind == "factoring" else _PARENT_WRAP)(d)
        title = wrap.format(body=title, sub=fields["sub"], agr=payer.agreement)
    if d.u() < 0.04 and party.lang == "pl":
        title = title.lower()  # typed with caps lock off and no care
        if label == "ref_exact" and any(ref != ref.lower() for ref in refs):
            label = "ref_reformatted"
        refs = [ref.lower() for ref in refs]
    title = " ".join(title.split())
    labels = [label]
    if len(title) > _TITLE_MAX:
        cut = title[:_TITLE_MAX]
        if any(ref in title and ref not in cut for ref in refs):
            labels.append("title_truncated")
        title = cut
    return title, labels


# --------------------------------------------------------------------------------------------
# Emission: from planned payments to transfer rows


class _Out:
    """Transfer, match and label rows in columns, keyed for a deterministic final order."""

    def __init__(self) -> None:
        self.key: list[tuple[int, int, int, int]] = []
        self.day: list[int] = []
        self.direction: list[str] = []
        self.cents: list[int] = []
        self.currency: list[str] = []
        self.name: list[str | None] = []
        self.iban: list[str | None] = []
        self.title: list[str | None] = []
        self.matched_after: list[int] = []
        self.m_transfer: list[int] = []
        self.m_row: list[int] = []
        self.m_cents: list[int] = []
        self.n_transfer: list[int] = []
        self.n_pattern: list[str] = []

    def add(
        self,
        key: tuple[int, int, int, int],
        day: int,
        direction: str,
        cents: int,
        currency: str,
        name: str | None,
        iban: str | None,
        title: str | None,
        matched_after: int,
        items: Sequence[tuple[int, int]],
        notes: Sequence[str],
    ) -> None:
        t = len(self.key)
        self.key.append(key)
        self.day.append(day)
        self.direction.append(direction)
        self.cents.append(cents)
        self.currency.append(currency)
        self.name.append(name)
        self.iban.append(iban)
        self.title.append(title)
        self.matched_after.append(matched_after)
        for row, applied in items:
            self.m_transfer.append(t)
            self.m_row.append(row)
            self.m_cents.append(applied)
        for note in dict.fromkeys(notes):
            self.n_transfer.append(t)
            self.n_pattern.append(note)


def _payer_for(world: _World, party: _Party, p: _Pending) -> _Payer | None:
    if party.payer is not None and p.u_payer < party.payer_share:
        return party.payer
    if party.shift_payer is not None and p.booking >= world.shift_day and p.u_payer < 0.9:
        return party.shift_payer
    return None


def _account(
    world: _World, party: _Party, payer: _Payer | None, p: _Pending, d: _Draw
) -> tuple[str | None, str | None]:
    """The statement's name and IBAN of the other side of the transfer."""
    prof = world.profile
    u_other, u_null, u_pick, u_account = d.u(), d.u(), d.u(), d.u()
    supplier = party.kind == "supplier"
    # the payee list we type into our bank barely changes; payers' banks render names variously
    p_other = 0.01 if supplier else prof.p_name_other
    p_null = 0.003 if supplier else prof.p_name_null
    if payer is not None:
        names: Sequence[str] = payer.names
        usual = payer.names[0]
        iban: str | None = payer.iban
    else:
        names = party.names
        usual = party.names[party.name_main]
        iban = party.pay_iban
        if supplier and p.booking >= party.other_from and party.p_other_account > 0:
            iban = party.other_iban  # the supplier moved to another bank
        elif not supplier and u_account < party.p_other_account:
            iban = party.other_iban
    name: str | None = usual
    if u_other < p_other:
        name = names[min(int(u_pick * len(names)), len(names) - 1)]
    if u_null < p_null:
        name = None
    return name, iban


def _emit_party(world: _World, party: _Party, pending: list[_Pending], out: _Out) -> None:
    """Render names and titles in booking order and write the party's transfers."""
    d = _Draw(_rng(world.config.seed, _STREAM_TEXT, party.index))
    direction = contract.INCOMING if party.direction == contract.RECEIVABLE else contract.OUTGOING
    for p in sorted(pending, key=lambda p: (p.booking, p.seq)):
        if p.booking >= world.cal.end:
            continue
        key = (p.booking, 0, party.index, p.seq)
        if p.fixed is not None:
            name, iban, title, cents, currency = p.fixed
            out.add(
                key,
                p.booking,
                direction,
                cents,
                currency,
                name,
                iban,
                title,
                0,
                [],
                ["no_invoice", *p.notes],
            )
            continue
        payer = _payer_for(world, party, p)
        name, iban = _account(world, party, payer, p, d)
        title, ref_labels = _render_title(world, party, payer, p, d)
        notes = [p.kind, *ref_labels, *p.notes]
        if payer is not None:
            notes.append("third_party_" + payer.kind)
        else:
            if name is not None and name.upper() != party.name.upper():
                notes.append("name_variant")
            if iban is None or iban != party.master_iban:
                notes.append("iban_unknown")
        if name is None:
            notes.append("name_missing")
        if party.currency != "PLN":
            notes.append("foreign_currency")
        cents = sum(c for _, c in p.items)
        out.add(
            key,
            p.booking,
            direction,
            cents,
            party.currency,
            name,
            iban,
            title,
            p.matched_after,
            p.items,
            notes,
        )


# --------------------------------------------------------------------------------------------
# Bank flows that pay no invoice

_SALARY_TITLES = _choices(
    ("Wynagrodzenie {mm}/{yyyy}", 3),
    ("wynagrodzenie za {month} {yyyy}", 2),
    ("Wynagrodzenie za m-c {mm}.{yyyy}", 1),
    ("Pensja {month}", 1),
    ("Wypłata {mm}/{yyyy}", 1),
)
_BANK_CHARGES = _choices(
    ("Opłata za przelew natychmiastowy", 2),
    ("Prowizja za przelew", 2),
    ("Opłata za kartę", 1),
    ("Opłata za wyciąg", 0.5),
    ("Opłata za powiadomienia SMS", 0.5),
    ("Prowizja od wpłaty gotówkowej", 0.5),
)
_UNKNOWN_TITLES: _Choice[str | None] = _Choice(
    [
        ("przelew", 2),
        ("Wpłata", 1),
        ("zwrot", 1),
        ("zwrot pożyczki", 0.5),
        ("darowizna", 0.3),
        ("", 1),
        (None, 1.5),
        ("FV {n}/{mm}/{yyyy}", 1),
        ("Zapłata za fakturę {n}/{yyyy}", 1),
        ("kaucja", 0.5),
        ("wadium przetarg {n}", 0.3),
        ("odszkodowanie szkoda nr {big}", 0.4),
    ]
)


def _other_flows(world: _World, out: _Out) -> None:
    """Salaries, taxes, bank charges, refunds, unknown money, own transfers, payouts, interest."""
    flows = _OtherFlows(world, out)
    for m in range(world.cal.months):
        payroll = flows.salaries(m)
        flows.taxes(m, payroll)
        flows.bank(m)
        flows.refunds(m)
        flows.unknown_incoming(m)
        flows.internal_and_payouts(m)


class _OtherFlows:
    """Transfers that pay no invoice, month by month, from one random stream."""

    def __init__(self, world: _World, out: _Out) -> None:
        self.world, self.out, self.cal = world, out, world.cal
        self.scale = world.config.scale
        self.d = d = _Draw(_rng(world.config.seed, _STREAM_OTHER))
        self.seq = itertools.count()
        self.employees: list[tuple[str, str | None, int, int]] = []
        for _ in range(max(2, round(world.profile.n_employees * self.scale))):
            first, last = _person(d)
            label = d.pick(
                (f"{first} {last}", f"{first} {last}".upper(), f"{last} {first}".upper())
            )
            base = round(math.exp(math.log(6500) + 0.35 * d.z()) * 100)
            start = d.integer(0, self.cal.months - 1) if d.chance(0.1) else 0
            self.employees.append((label, _iban("PL", d), base, start))
        self.zus_iban, self.tax_iban = _iban("PL", d), _iban("PL", d)
        self.gateways = [("PayU S.A.", _iban("PL", d)), ("PAYPRO SPÓŁKA AKCYJNA", _iban("PL", d))]
        self.regular = [p for p in world.customers if p.kind == "regular"]

    def add(
        self,
        day: int,
        direction: str,
        cents: int,
        name: str | None,
        iban: str | None,
        title: str | None,
        kind: str,
        currency: str = "PLN",
    ) -> None:
        key = (day, 1, 0, next(self.seq))
        notes = ["no_invoice", kind]
        self.out.add(key, day, direction, max(cents, 1), currency, name, iban, title, 0, [], notes)

    def fields(self, m: int) -> dict[str, str]:
        year, month = self.cal.ym[m]
        return {"mm": f"{month:02d}", "yyyy": str(year), "month": _MONTHS_PL[month - 1]}

    def salaries(self, m: int) -> int:
        d, cal = self.d, self.cal
        if self.world.salary_on_last_day:
            day = cal.bdays[m][-1]
        else:
            day = cal.next_bday(cal.month_starts[m] + 9)
        payroll = 0
        for label, iban, base, start in self.employees:
            if m < start:
                continue
            cents = round(base * (1 + 0.03 * d.z()))
            if d.chance(0.08):
                cents += round(base * 0.3 * d.u())  # a bonus
            payroll += cents
            title = _SALARY_TITLES(d).format_map(self.fields(m))
            self.add(day, contract.OUTGOING, cents, label, iban, title, "salary")
        return payroll

    def taxes(self, m: int, payroll: int) -> None:
        d, cal = self.d, self.cal
        year, month = cal.ym[m]
        first_day = cal.month_starts[m]
        zus_title = d.pick(("Składki ZUS {mm}/{yyyy}", "ZUS {mm}.{yyyy}")).format_map(
            self.fields(m)
        )
        zus_name = "ZAKŁAD UBEZPIECZEŃ SPOŁECZNYCH"
        zus_day = cal.next_bday(first_day + 14)
        self.add(
            zus_day,
            contract.OUTGOING,
            round(payroll * 0.38),
            zus_name,
            self.zus_iban,
            zus_title,
            "tax",
        )
        # the tax transfer format: /TI/ taxpayer id, /OKR/ period, /SFP/ form
        period = f"{year % 100:02d}M{(month - 2) % 12 + 1:02d}"
        for form, share in (("PIT4R", 0.12), ("VAT-7", 0.9), ("CIT-8", 0.15)):
            day = cal.next_bday(first_day + (24 if form == "VAT-7" else 19))
            title = f"/TI/N{self.world.our_nip}/OKR/{period}/SFP/{form}/TXT/{form} {period}"
            office: str | None = d.pick(("MIKRORACHUNEK PODATKOWY", "URZĄD SKARBOWY", None))
            cents = round(payroll * share * (0.8 + 0.4 * d.u()))
            self.add(day, contract.OUTGOING, cents, office, self.tax_iban, title, "tax")

    def bank(self, m: int) -> None:
        d, bdays = self.d, self.cal.bdays[m]
        year, month = self.cal.ym[m]
        title = f"Opłata za prowadzenie rachunku {month:02d}/{year}"
        self.add(
            bdays[-1],
            contract.OUTGOING,
            d.pick((4900, 6900, 9900)),
            None,
            None,
            title,
            "bank_charge",
        )
        for _ in range(int(d.rng.poisson(3 * self.scale))):
            self.add(
                d.pick(bdays),
                contract.OUTGOING,
                d.integer(1, 25) * 100,
                None,
                None,
                _BANK_CHARGES(d),
                "bank_charge",
            )
        self.add(
            bdays[-1],
            contract.INCOMING,
            d.integer(100, 40000),
            None,
            None,
            "Kapitalizacja odsetek",
            "interest",
        )

    def refunds(self, m: int) -> None:
        d, bdays = self.d, self.cal.bdays[m]
        for _ in range(int(d.rng.poisson(4 * self.scale))):
            self.refund(d.pick(self.regular), d.pick(bdays))
        for _ in range(int(d.rng.poisson(2 * self.scale))):
            self.refund(d.pick(self.world.suppliers), d.pick(bdays))

    def refund(self, party: _Party, day: int) -> None:
        """A refund names a real counterparty and often its invoice number: a hard negative."""
        d, inv = self.d, self.world.invoices
        issued = [row for row in party.invoices if inv.issue[row] <= day]
        number = inv.number_text[issued[-1]] if issued else None
        if number and d.u() < 0.6:
            template = d.pick(
                ("Zwrot nadpłaty {n}", "Zwrot środków - reklamacja {n}", "Korekta {n} zwrot")
            )
            title = template.format(n=number)
        else:
            title = d.pick(("Zwrot nadpłaty", "zwrot", "Zwrot środków", "reklamacja"))
        direction = contract.INCOMING if party.kind == "supplier" else contract.OUTGOING
        cents = round(math.exp(math.log(150) + 1.0 * d.z()) * 100)
        name = party.names[party.name_main]
        self.add(day, direction, cents, name, party.pay_iban, title, "refund", party.currency)

    def unknown_incoming(self, m: int) -> None:
        d, bdays = self.d, self.cal.bdays[m]
        for _ in range(int(d.rng.poisson(7 * self.scale))):
            if d.chance(0.6):
                first, last = _person(d)
                sender = f"{first} {last}".upper()
            else:
                sender = _company(d, "PL")[0].upper()
            extra = {"n": str(d.integer(1, 400)), "big": d.digits(9)}
            template = _UNKNOWN_TITLES(d)
            title = template.format_map(self.fields(m) | extra) if template else template
            cents = round(math.exp(math.log(800) + 1.2 * d.z()) * 100)
            self.add(
                d.pick(bdays),
                contract.INCOMING,
                cents,
                sender,
                _iban("PL", d),
                title,
                "unknown_incoming",
            )

    def internal_and_payouts(self, m: int) -> None:
        d, bdays, world = self.d, self.cal.bdays[m], self.world
        for _ in range(int(d.rng.poisson(4))):
            direction = d.pick((contract.INCOMING, contract.OUTGOING))
            title = d.pick(("Przelew własny", "Zasilenie rachunku", "Przeksięgowanie środków"))
            self.add(
                d.pick(bdays),
                direction,
                d.integer(10, 500) * 10000,
                world.our_name.upper(),
                world.our_other_iban,
                title,
                "internal",
            )
        for _ in range(int(d.rng.poisson(14 * self.scale))):
            gateway, iban = d.pick(self.gateways)
            day = d.pick(bdays)
            if gateway.startswith("PayU"):
                title = f"PayU Wypłata {_date(day):%Y-%m-%d} {d.digits(8)}"
            else:
                title = f"Przelewy24 wypłata nr {d.digits(7)}"
            cents = round(math.exp(math.log(3000) + 0.7 * d.z()) * 100)
            self.add(day, contract.INCOMING, cents, gateway, iban, title, "gateway_payout")


# --------------------------------------------------------------------------------------------
# Frames


def _days(values: Sequence[int]) -> np.ndarray:
    return np.asarray(values, dtype="int64").astype("datetime64[D]").astype("datetime64[ns]")


def _money(cents: Sequence[int]) -> np.ndarray:
    return np.round(np.asarray(cents, dtype="float64") / 100, 2)


def _text(values: Sequence[str | None]) -> pd.Series:
    return pd.Series(values, dtype="str")


def _assemble(world: _World, out: _Out) -> SyntheticData:
    inv, parties = world.invoices, world.parties
    order = inv.order
    invoice_id = [""] * len(order)
    for k, row in enumerate(order):
        invoice_id[row] = f"inv-{k + 1:07d}"
    owner = [parties[inv.party[row]] for row in order]
    invoices = pd.DataFrame(
        {
            "invoice_id": _text([invoice_id[row] for row in order]),
            "invoice_number": _text([inv.number_text[row] for row in order]),
            "direction": _text([p.direction for p in owner]),
            "counterparty_id": _text([p.id for p in owner]),
            "counterparty_name": _text([p.name for p in owner]),
            "counterparty_tax_id": _text([p.tax_id for p in owner]),
            "counterparty_iban": _text([p.master_iban for p in owner]),
            "currency": _text([p.currency for p in owner]),
            "amount": _money([inv.cents[row] for row in order]),
            "issue_date": _days([inv.issue[row] for row in order]),
            "due_date": _days([inv.due[row] for row in order]),
        }
    )

    t_order = sorted(range(len(out.key)), key=out.key.__getitem__)
    position = [0] * len(t_order)
    for k, t in enumerate(t_order):
        position[t] = k
    transfer_id = [f"trf-{k + 1:07d}" for k in range(len(t_order))]
    transfers = pd.DataFrame(
        {
            "transfer_id": _text(transfer_id),
            "booking_date": _days([out.day[t] for t in t_order]),
            "direction": _text([out.direction[t] for t in t_order]),
            "amount": _money([out.cents[t] for t in t_order]),
            "currency": _text([out.currency[t] for t in t_order]),
            "counterparty_name": _text([out.name[t] for t in t_order]),
            "counterparty_iban": _text([out.iban[t] for t in t_order]),
            "title": _text([out.title[t] for t in t_order]),
        }
    )

    m_order = sorted(
        range(len(out.m_row)),
        key=lambda i: (position[out.m_transfer[i]], invoice_id[out.m_row[i]]),
    )
    seconds = [
        out.day[out.m_transfer[i]] * 86400 + out.matched_after[out.m_transfer[i]] for i in m_order
    ]
    matches = pd.DataFrame(
        {
            "transfer_id": _text([transfer_id[position[out.m_transfer[i]]] for i in m_order]),
            "invoice_id": _text([invoice_id[out.m_row[i]] for i in m_order]),
            "amount": _money([out.m_cents[i] for i in m_order]),
            "matched_at": np.asarray(seconds, dtype="int64")
            .astype("datetime64[s]")
            .astype("datetime64[ns]"),
        }
    )

    rank = {p: k for k, p in enumerate(PATTERNS)}
    n_order = sorted(
        range(len(out.n_transfer)),
        key=lambda i: (position[out.n_transfer[i]], rank[out.n_pattern[i]]),
    )
    notes = pd.DataFrame(
        {
            "transfer_id": _text([transfer_id[position[out.n_transfer[i]]] for i in n_order]),
            "pattern": _text([out.n_pattern[i] for i in n_order]),
        }
    )
    return SyntheticData(invoices, transfers, matches, notes)
