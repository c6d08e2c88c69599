"""Emission: from planned payments to transfer rows, with the statement's name, account and
title, and the match and truth-label rows that go with them.
"""

from __future__ import annotations

from collections.abc import Sequence

from cashmatch.domain import contract
from cashmatch.synth.counterparties import Party, Payer, World
from cashmatch.synth.payments import Pending
from cashmatch.synth.randomness import STREAM_TEXT, Draw, stream_rng
from cashmatch.synth.titles import render_title


class Out:
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


def _payer_for(world: World, party: Party, p: Pending) -> Payer | None:
    if party.payer is not None and p.u_payer < party.payer_share:
        return party.payer
    if party.shift_payer is not None and p.booking >= world.shift_day and p.u_payer < 0.9:
        return party.shift_payer
    return None


def _account(
    world: World, party: Party, payer: Payer | None, p: Pending, d: Draw
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


def emit_party(world: World, party: Party, pending: list[Pending], out: Out) -> None:
    """Render names and titles in booking order and write the party's transfers."""
    d = Draw(stream_rng(world.config.seed, STREAM_TEXT, party.index))
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
        title, ref_labels = render_title(world, party, payer, p, d)
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
