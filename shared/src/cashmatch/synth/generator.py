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

The steps live in modules of their own (`counterparties`, `invoices`, `payments`, `titles`,
`emission`, `other_flows`, `frames`; `randomness`, `profiles`, `bank_calendar`, `names` and
`invoice_formats` serve them); `generate()` below runs them in order.
"""

from __future__ import annotations

import pandas as pd

from cashmatch.synth.config import SynthConfig
from cashmatch.synth.counterparties import World
from cashmatch.synth.emission import Out, emit_party
from cashmatch.synth.frames import SyntheticData, assemble
from cashmatch.synth.invoices import issue_invoices
from cashmatch.synth.other_flows import other_flows
from cashmatch.synth.patterns import PATTERNS
from cashmatch.synth.payments import plan_regular_customer, plan_subscription, plan_supplier


def generate(config: SynthConfig) -> SyntheticData:
    """Simulate invoices, bank transfers and human matches for `config.months` months."""
    world = World(config)
    for party in world.parties:
        issue_invoices(world, party)
    world.invoices.number(world)
    out = Out()
    for party in world.parties:
        if party.kind == "subscription":
            pending = plan_subscription(world, party)
        elif party.kind == "supplier":
            pending = plan_supplier(world, party)
        else:
            pending = plan_regular_customer(world, party)
        emit_party(world, party, pending, out)
    other_flows(world, out)
    return assemble(world, out)


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
