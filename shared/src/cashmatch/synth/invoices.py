"""Invoices: the invoice table, how its numbers are printed, and issuing each counterparty's
invoices and credit notes over the horizon.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from cashmatch.synth.invoice_formats import OUR_SERIES
from cashmatch.synth.profiles import SEASON, SHIFT_SUBSCRIPTION_PRICE
from cashmatch.synth.randomness import STREAM_INVOICES, Draw, stream_rng

if TYPE_CHECKING:
    from cashmatch.synth.counterparties import Party, World


class Invoices:
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
        party: Party,
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

    def number(self, world: World) -> None:
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
                fmt = OUR_SERIES[series]
                key = (series, year, month if fmt.period == "month" else 0)
                counters[key] = seq = counters.get(key, 0) + 1
            seq_text = f"{seq:0{fmt.width}d}" if fmt.width else str(seq)
            self.seq_text[row] = seq_text
            self.number_text[row] = fmt.template.format(
                Y=year, y=year % 100, M=month, S=seq_text, P=party.supplier_prefix
            )


_PRICE_LIST_NET = (49, 99, 149, 199, 249, 299, 399, 499, 799, 999, 1499, 1999, 2499, 4999)
_QUANTITIES = (1, 1, 1, 1, 2, 2, 3, 4, 5, 10)


def issue_invoices(world: World, party: Party) -> None:
    """Issue a counterparty's invoices (and credit notes) over the horizon, in date order."""
    cal, inv = world.cal, world.invoices
    d = Draw(stream_rng(world.config.seed, STREAM_INVOICES, party.index))
    party.inv_draw = d
    months = range(party.active_from, party.active_to)
    if party.kind == "subscription":
        for m in months:
            issue = cal.bdays[m][0]
            cents = party.plan_cents
            if issue >= world.shift_day:
                cents = round(cents * SHIFT_SUBSCRIPTION_PRICE / 100) * 100
            inv.add(party, issue, issue + party.terms, cents, party.plan_cents)
        return
    lam = np.array([party.rate * SEASON[cal.ym[m][1] - 1] for m in months])
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
