"""Counterparties: customers, suppliers and the parents or factors who pay for them, with the
habits drawn once for each; `World` draws them all (and our own company) from the config.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cashmatch.domain import contract
from cashmatch.synth.bank_calendar import Calendar, epoch_day, parse_month
from cashmatch.synth.config import SynthConfig
from cashmatch.synth.habit_draws import drawn_profile, drawn_structured, party_habits
from cashmatch.synth.invoice_formats import SUPPLIER_CREDIT_FORMATS, SUPPLIER_FORMATS, Format
from cashmatch.synth.invoices import Invoices
from cashmatch.synth.names import (
    FOREIGN,
    FOREIGN_CHOICE,
    NAME_HABIT_CUM,
    random_address,
    random_company,
    random_iban,
    random_nip,
    random_person,
    random_stem,
    statement_names,
    strip_diacritics,
)
from cashmatch.synth.profiles import (
    PROFILE_PARAMETERS,
    REF_STYLES,
    SHIFT_AMOUNT,
    SHIFT_NEW_FACTORING,
    SHIFT_REF_LOSS,
)
from cashmatch.synth.randomness import STREAM_PARTY, STREAM_WORLD, Draw, stream_rng, weighted_index


@dataclass(frozen=True)
class Payer:
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
class Party:
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
    supplier_format: Format | None = None
    supplier_credit_format: Format | None = None
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
    payer: Payer | None = None
    payer_share: float = 0.0
    shift_payer: Payer | None = None
    standing_day: int = 0  # subscriptions by standing order; 0: pays by hand
    # writing titles
    style_cum: list[float] = field(default_factory=list)
    shifted_style_cum: list[float] = field(default_factory=list)
    mpp: bool = False  # uses the split-payment title format
    structured: str = ""  # "rf" (creditor reference) | "sepa" (tagged titles) | "" (free text)
    standing_kind: str = ""
    standing_title: str | None = None
    standing_ref: int = -1
    # drawn by the habit randomizer (habit_draws); the defaults are the profiles' fixed habits
    max_collective: int = 0  # 0: the kind's own cap (12 customers, 8 suppliers)
    title_max: int = 0  # 0: the 140-character form
    p_own_doc: float = 0.0
    fee_scale: float = 1.0
    # filled while simulating
    invoices: list[int] = field(default_factory=list)
    inv_draw: Draw | None = None


def _style_cum(probs: Sequence[float]) -> list[float]:
    return list(itertools.accumulate(probs))


def _shifted_style(probs: Sequence[float]) -> list[float]:
    moved = sum(probs[:REF_STYLES]) * SHIFT_REF_LOSS
    refs = [p * (1 - SHIFT_REF_LOSS) for p in probs[:REF_STYLES]]
    rest = probs[REF_STYLES:]
    weight = sum(rest) or 1.0
    return _style_cum(refs + [p + moved * p / weight for p in rest])


def _dirichlet(d: Draw, mean: Sequence[float], concentration: float) -> list[float]:
    alpha = np.maximum(np.asarray(mean) * concentration * len(mean), 0.02)
    return d.rng.dirichlet(alpha).tolist()


class World:
    """Everything drawn once: calendar, counterparties, payers, employees, our company."""

    def __init__(self, config: SynthConfig) -> None:
        self.config = config
        self.profile = PROFILE_PARAMETERS[config.profile]
        self.structured_share = config.structured
        if config.habits is not None:
            self.profile = drawn_profile(self.profile, config.habits)
            self.structured_share = max(config.structured, drawn_structured(config.habits))
        self.cal = Calendar(config.start, config.months)
        self.shift_day = _NEVER
        if config.shift_from is not None:
            y, m = parse_month(config.shift_from, "shift_from")
            self.shift_day = epoch_day(y, m, 1)
        self.switch_day = _NEVER
        if config.switch_from is not None:
            y, m = parse_month(config.switch_from, "switch_from")
            self.switch_day = epoch_day(y, m, 1)
        d = Draw(stream_rng(config.seed, STREAM_WORLD))
        self.our_name = "Cashmatch Demo Sp. z o.o."
        self.our_nip = random_nip(d)
        self.our_other_iban = random_iban("PL", d) or ""
        self.salary_on_last_day = d.chance(0.5)
        self.factors = [self._payer(d, "factoring", name) for name in _FACTORS]
        self.parents = [
            self._payer(d, "parent", None)
            for _ in range(max(2, round(self.profile.n_parents * config.scale)))
        ]
        self.invoices = Invoices()
        self.parties: list[Party] = []
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

    def _payer(self, d: Draw, kind: str, company: tuple[str, str, str] | None) -> Payer:
        stem = ""
        if company is None:
            stem = random_stem(d)
            company = d.pick(
                (
                    (f"{stem} Holding S.A.", f"{stem} Holding", "S.A."),
                    (f"{stem} Group Sp. z o.o.", f"{stem} Group", "Sp. z o.o."),
                    (f"Grupa {stem} S.A.", f"Grupa {stem}", "S.A."),
                )
            )
        name, base, legal = company
        names = statement_names(name, base, legal, random_address(d, "PL"), d)
        usual = names[weighted_index(NAME_HABIT_CUM, d.u())]
        ordered = (usual, *[n for n in names if n != usual])
        mean = (0.75, 0.08, 0.02, 0.02, 0.10, 0.03) if kind == "factoring" else None
        style = _dirichlet(d, mean or self.profile.payer_style_mean, 6.0)
        agreement = f"{d.integer(10, 999)}/{d.integer(2019, 2024)}"
        return Payer(
            kind,
            name,
            stem,
            ordered,
            random_iban("PL", d) or "",
            agreement,
            tuple(_style_cum(style)),
        )

    def _party(self, kind: str, index: int) -> Party:
        d = Draw(stream_rng(self.config.seed, STREAM_PARTY, index))
        direction = contract.PAYABLE if kind == "supplier" else contract.RECEIVABLE
        party = Party(index, f"cp-{index + 1:06d}", kind, direction)
        self._identity(party, d)
        self._invoicing(party, d)
        self._paying(party, d)
        self._writing(party, d)
        if self.config.habits is not None:
            self._drawn_habits(party)
        return party

    def _drawn_habits(self, party: Party) -> None:
        """The habit randomizer's per-counterparty draws, on top of the profile's."""
        h = party_habits(
            self.config.habits or 0, party.index, self.profile.p_batch, party.kind == "supplier"
        )
        party.max_collective = h.max_collective
        party.title_max = h.title_max
        party.p_own_doc = h.p_own_doc
        party.fee_scale = h.fee_scale
        if h.batch and party.kind != "subscription":
            # one batch day a month: the batch then holds every invoice that came due since
            party.batch_days = party.batch_days[:1] or (25,)
            party.rate = min(party.rate * h.rate_boost, 40.0)

    def _identity(self, party: Party, d: Draw) -> None:
        """Name, tax id, accounts; and who pays on the party's behalf."""
        prof, cal = self.profile, self.cal
        supplier = party.kind == "supplier"
        p_foreign = (
            prof.p_foreign * {"regular": 1.0, "subscription": 0.2, "supplier": 1.3}[party.kind]
        )
        if d.chance(p_foreign):
            party.country = FOREIGN_CHOICE(d)
            _, party.lang, party.currency, _, _ = FOREIGN[party.country]
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
        if party.payer is None and not supplier and u_shift < SHIFT_NEW_FACTORING:
            party.shift_payer = shift_factor

        consumer = party.kind == "subscription" and not foreign and d.chance(0.25)
        if consumer:
            first, last = random_person(d)
            name, base, legal = f"{first} {last}", f"{first} {last}", ""
        else:
            name, base, legal = random_company(d, party.country, stem)
        party.name = name
        party.names = statement_names(name, base, legal, random_address(d, party.country), d)
        party.name_main = weighted_index(NAME_HABIT_CUM, d.u())
        party.supplier_prefix = (
            "".join(ch for ch in strip_diacritics(base).upper() if ch.isalpha())[:3] or "FX"
        )
        if foreign:
            digits = FOREIGN[party.country][4]
            party.tax_id = f"{party.country}{d.digits(digits)}" if digits else None
        elif not consumer:
            party.tax_id = random_nip(d)
        if d.chance(prof.p_tax_missing):
            party.tax_id = None
        party.pay_iban = random_iban(party.country, d)
        party.master_iban = None if d.chance(prof.p_iban_missing) else party.pay_iban
        party.other_iban = random_iban(party.country, d)
        party.p_other_account = d.u() * 0.5 if d.chance(prof.p_other_account) else 0.0
        if supplier and party.p_other_account > 0:
            party.other_from = cal.start + int(d.u() * (cal.end - cal.start))

    def _invoicing(self, party: Party, d: Draw) -> None:
        """How many invoices, of which amounts, numbered how, over which months."""
        prof, months = self.profile, self.cal.months
        supplier, foreign = party.kind == "supplier", party.currency != "PLN"
        if supplier:
            party.rate = min(math.exp(0.8 * d.z()), 20.0)
            party.amount_mu = math.log(2500.0) + 1.1 * d.z()
            party.supplier_format = d.pick(SUPPLIER_FORMATS)
            party.supplier_credit_format = d.pick(SUPPLIER_CREDIT_FORMATS)
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
        party.shift_amount = SHIFT_AMOUNT[0] + (SHIFT_AMOUNT[1] - SHIFT_AMOUNT[0]) * d.u()

    def _paying(self, party: Party, d: Draw) -> None:
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

    def _writing(self, party: Party, d: Draw) -> None:
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
        if self.structured_share > 0 and d.chance(self.structured_share):
            # RF references come with our own invoices; suppliers' banks tag SEPA titles
            party.structured = "sepa" if supplier or party.lang != "pl" else d.pick(("rf", "sepa"))


_FACTORS = (
    ("Faktoria Finanse Sp. z o.o.", "Faktoria Finanse", "Sp. z o.o."),
    ("EuroFaktor Polska S.A.", "EuroFaktor Polska", "S.A."),
    ("Capital Faktor Sp. z o.o.", "Capital Faktor", "Sp. z o.o."),
    ("Nordic Trade Finance Polska S.A.", "Nordic Trade Finance Polska", "S.A."),
)
