"""Bank flows that pay no invoice: salaries, taxes, bank charges, refunds, unknown money, own
transfers, payment-gateway payouts and interest.
"""

from __future__ import annotations

import itertools
import math

from cashmatch.domain import contract
from cashmatch.synth.bank_calendar import date
from cashmatch.synth.counterparties import Party, World
from cashmatch.synth.emission import Out
from cashmatch.synth.names import random_company, random_iban, random_person
from cashmatch.synth.randomness import STREAM_OTHER, Choice, Draw, stream_rng
from cashmatch.synth.titles import MONTHS_PL, choices

_SALARY_TITLES = choices(
    ("Wynagrodzenie {mm}/{yyyy}", 3),
    ("wynagrodzenie za {month} {yyyy}", 2),
    ("Wynagrodzenie za m-c {mm}.{yyyy}", 1),
    ("Pensja {month}", 1),
    ("Wypłata {mm}/{yyyy}", 1),
)
_BANK_CHARGES = choices(
    ("Opłata za przelew natychmiastowy", 2),
    ("Prowizja za przelew", 2),
    ("Opłata za kartę", 1),
    ("Opłata za wyciąg", 0.5),
    ("Opłata za powiadomienia SMS", 0.5),
    ("Prowizja od wpłaty gotówkowej", 0.5),
)
_UNKNOWN_TITLES: Choice[str | None] = Choice(
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


def other_flows(world: World, out: Out) -> None:
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

    def __init__(self, world: World, out: Out) -> None:
        self.world, self.out, self.cal = world, out, world.cal
        self.scale = world.config.scale
        self.d = d = Draw(stream_rng(world.config.seed, STREAM_OTHER))
        self.seq = itertools.count()
        self.employees: list[tuple[str, str | None, int, int]] = []
        for _ in range(max(2, round(world.profile.n_employees * self.scale))):
            first, last = random_person(d)
            label = d.pick(
                (f"{first} {last}", f"{first} {last}".upper(), f"{last} {first}".upper())
            )
            base = round(math.exp(math.log(6500) + 0.35 * d.z()) * 100)
            start = d.integer(0, self.cal.months - 1) if d.chance(0.1) else 0
            self.employees.append((label, random_iban("PL", d), base, start))
        self.zus_iban, self.tax_iban = random_iban("PL", d), random_iban("PL", d)
        self.gateways = [
            ("PayU S.A.", random_iban("PL", d)),
            ("PAYPRO SPÓŁKA AKCYJNA", random_iban("PL", d)),
        ]
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
        return {"mm": f"{month:02d}", "yyyy": str(year), "month": MONTHS_PL[month - 1]}

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

    def refund(self, party: Party, day: int) -> None:
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
                first, last = random_person(d)
                sender = f"{first} {last}".upper()
            else:
                sender = random_company(d, "PL")[0].upper()
            extra = {"n": str(d.integer(1, 400)), "big": d.digits(9)}
            template = _UNKNOWN_TITLES(d)
            title = template.format_map(self.fields(m) | extra) if template else template
            cents = round(math.exp(math.log(800) + 1.2 * d.z()) * 100)
            self.add(
                d.pick(bdays),
                contract.INCOMING,
                cents,
                sender,
                random_iban("PL", d),
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
                title = f"PayU Wypłata {date(day):%Y-%m-%d} {d.digits(8)}"
            else:
                title = f"Przelewy24 wypłata nr {d.digits(7)}"
            cents = round(math.exp(math.log(3000) + 0.7 * d.z()) * 100)
            self.add(day, contract.INCOMING, cents, gateway, iban, title, "gateway_payout")
