"""Frames: `SyntheticData`, and how the simulation's columns become its DataFrames in a
deterministic order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cashmatch.synth.counterparties import World
from cashmatch.synth.emission import Out
from cashmatch.synth.patterns import PATTERNS


@dataclass
class SyntheticData:
    """The three contract tables, plus per-transfer truth labels (not part of the contract)."""

    invoices: pd.DataFrame
    transfers: pd.DataFrame
    matches: pd.DataFrame
    truth_notes: pd.DataFrame | None = None  # transfer_id, pattern: one row per label


def _days(values: Sequence[int]) -> np.ndarray:
    return np.asarray(values, dtype="int64").astype("datetime64[D]").astype("datetime64[ns]")


def _money(cents: Sequence[int]) -> np.ndarray:
    return np.round(np.asarray(cents, dtype="float64") / 100, 2)


def _text(values: Sequence[str | None]) -> pd.Series:
    return pd.Series(values, dtype="str")


def assemble(world: World, out: Out) -> SyntheticData:
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
