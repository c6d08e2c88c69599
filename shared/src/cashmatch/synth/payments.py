"""Payment planning: which invoices each transfer pays, and when. Titles and names are not
written here: emission renders them later, in booking order.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from cashmatch.synth.bank_calendar import Calendar
from cashmatch.synth.counterparties import Party, World
from cashmatch.synth.randomness import STREAM_PLAN, Draw, stream_rng


@dataclass(slots=True)
class Pending:
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


def _matched_after(d: Draw) -> int:
    # reviewed one to eight days later, during office hours
    return (1 + int(d.u() * 8)) * 86400 + 8 * 3600 + int(d.u() * 9 * 3600)


def _pay_day(party: Party, issue: int, due: int, d: Draw) -> int:
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
    world: World, party: Party, row: int, start: int, d: Draw
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


def _next_batch_day(cal: Calendar, day: int, batch_days: tuple[int, ...]) -> int:
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
    world: World, party: Party, booking: int, rows: list[int], seq: int, d: Draw
) -> Pending:
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
        if party.fee_scale != 1.0:
            fee = max(100, round(fee * party.fee_scale))
        largest = max(range(len(items)), key=lambda i: (items[i][1], -i))
        if fee * 2 < items[largest][1]:
            row, cents = items[largest]
            items[largest] = (row, cents - fee)
            notes.append("bank_fee")
    if any(inv.credit_of[row] >= 0 for row in rows):
        notes.append("credit_note")
    kind = "collective" if len(rows) > 1 else "single"
    return Pending(booking, seq, items, kind, notes, d.u(), _matched_after(d))


def _add_instalments(
    pending: list[Pending], row: int, plan: list[tuple[int, int, int, int]], end: int, d: Draw
) -> None:
    for booking, cents, k, n in plan:
        if booking < end:
            pending.append(
                Pending(
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
    world: World,
    party: Party,
    to_pay: list[tuple[int, int]],
    max_items: int,
    pending: list[Pending],
    d: Draw,
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


def plan_regular_customer(world: World, party: Party) -> list[Pending]:
    """Customers pay invoice by invoice, or in batches on fixed days of the month."""
    cal, inv = world.cal, world.invoices
    d = Draw(stream_rng(world.config.seed, STREAM_PLAN, party.index))
    end = min(cal.end, party.insolvent_from)
    pending: list[Pending] = []
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
    _add_grouped(world, party, to_pay, party.max_collective or 12, pending, d)
    return pending


def plan_subscription(world: World, party: Party) -> list[Pending]:
    """Subscription customers pay the oldest open invoice each month; late ones catch up."""
    cal, inv = world.cal, world.invoices
    d = Draw(stream_rng(world.config.seed, STREAM_PLAN, party.index))
    pending: list[Pending] = []
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
        if by_hand and world.switch_day - 31 <= booking < world.switch_day:
            continue  # the `shift` scenario: they wait for the next invoice and pay it first
        if len(open_rows) >= 2 and booking >= world.switch_day:
            # The `shift` scenario: the newest of the equal invoices first, one a month, so the
            # older one stays open and the next month's payment looks just the same.
            chosen = [open_rows[-1]]
        elif len(open_rows) >= 2 and by_hand and u_catch < 0.6:
            chosen = open_rows[:3]
        elif len(open_rows) >= 2 and by_hand and u_newest < 0.15:
            chosen = [open_rows[-1]]  # pays the newest invoice; the older one stays open
        else:
            chosen = [open_rows[0]]
        open_rows = [row for row in open_rows if row not in chosen]
        items = [(row, inv.cents[row]) for row in chosen]
        kind = "collective" if len(items) > 1 else "single"
        pending.append(
            Pending(booking, len(pending), items, kind, ["subscription"], u_payer, matched)
        )
    return pending


def plan_supplier(world: World, party: Party) -> list[Pending]:
    """We pay suppliers in payment runs on Tuesdays and Fridays, close to the due date."""
    cal, inv = world.cal, world.invoices
    d = Draw(stream_rng(world.config.seed, STREAM_PLAN, party.index))
    pending: list[Pending] = []
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
    _add_grouped(world, party, to_pay, party.max_collective or 8, pending, d)
    if party.currency != "PLN":
        _add_foreign_payment_charges(pending, cal.end, d)
    return pending


def _add_foreign_payment_charges(pending: list[Pending], end: int, d: Draw) -> None:
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
            Pending(
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


def _payment_run(cal: Calendar, day: int) -> int:
    """Our payment runs are on Tuesdays and Fridays (or the next banking day)."""
    weekday = (day + 3) % 7
    ahead = min((target - weekday) % 7 for target in (1, 4))
    return cal.next_bday(day + ahead)
