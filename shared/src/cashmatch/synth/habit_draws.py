"""Habit randomizer: worlds whose habits nobody tuned the matcher on.

The two profiles are fixed points; a model tuned on them learns their habits, not the trade's.
`SynthConfig(habits=k)` draws, from its own random stream (seed `k`), a world around the chosen
profile: its population shares from wide ranges (`drawn_profile`) and, per counterparty, the
habits the profiles hold constant (`PartyHabits`): how many invoices one collective transfer
may pay (up to 30), how long a title may be (so how many numbers fit), whether the payer writes
its own document number (`ZAPL. DOK. 81266/2025`) instead of ours, how large a bank fee is,
how often it batches and how many invoices a batcher gets.

Only worlds with `habits` set draw anything here, and they draw from `STREAM_HABITS`, so the
profiles' own data (habits=None) stay byte for byte what they were.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from cashmatch.synth.profiles import STYLES, _Profile
from cashmatch.synth.randomness import Draw, stream_rng

STREAM_HABITS = 16  # beyond randomness' streams: adding it changes none of theirs

MAX_COLLECTIVE = 30
MIN_TITLE = 35  # one line of a Polish transfer form


@dataclass(frozen=True, slots=True)
class PartyHabits:
    """One counterparty's drawn habits (0 / 1.0 mean "as the profile does")."""

    max_collective: int  # invoices a collective transfer pays at most
    title_max: int  # characters of remittance text its bank keeps
    p_own_doc: float  # collective transfers titled with the payer's own document number
    fee_scale: float  # multiplies the bank fee taken off
    batch: bool  # pays in batches on fixed days
    rate_boost: float  # a batcher's invoices per month multiplied by this (big collectives)


def _u(d: Draw, lo: float, hi: float) -> float:
    return lo + (hi - lo) * d.u()


def drawn_profile(base: _Profile, seed: int) -> _Profile:
    """`base` with its population shares redrawn from wide ranges (one world's draw)."""
    d = Draw(stream_rng(seed, STREAM_HABITS, 0))
    styles = d.rng.dirichlet(np.full(len(STYLES), 1.2)).tolist()
    # keep some references in every world: a world without any is not a matching problem
    styles = [s + 0.1 / len(STYLES) for s in styles]
    total = sum(styles)
    return dataclasses.replace(
        base,
        style_mean=tuple(s / total for s in styles),
        style_concentration=_u(d, 1.0, 6.0),
        p_batch=_u(d, 0.05, 0.45),
        p_partial_customer=_u(d, 0.02, 0.16),
        p_credit=_u(d, 0.005, 0.08),
        p_factoring=_u(d, 0.0, 0.12),
        p_parent=_u(d, 0.0, 0.08),
        p_foreign=_u(d, 0.02, 0.2),
        p_fee_foreign=_u(d, 0.1, 0.8),
        p_fee_domestic=_u(d, 0.0, 0.1),
        p_discount_terms=_u(d, 0.0, 0.15),
        p_tax_missing=_u(d, 0.02, 0.2),
        p_iban_missing=_u(d, 0.05, 0.25),
        p_name_other=_u(d, 0.03, 0.2),
    )


def drawn_structured(seed: int) -> float:
    """The world's share of counterparties writing structured titles."""
    d = Draw(stream_rng(seed, STREAM_HABITS, 1))
    return _u(d, 0.0, 0.35)


def party_habits(seed: int, index: int, p_batch: float, supplier: bool) -> PartyHabits:
    """Counterparty `index`'s habits in world `seed` (its own stream: independent of others)."""
    d = Draw(stream_rng(seed, STREAM_HABITS, 2 + index))
    batch = d.chance(p_batch * (0.5 if supplier else 1.0))
    # collective sizes: mostly small, a long tail up to MAX_COLLECTIVE
    size = min(MAX_COLLECTIVE, 2 + int(math.exp(_u(d, 0.0, math.log(MAX_COLLECTIVE)))))
    title = d.pick((MIN_TITLE, 70, 105, 140, 140, 140))
    return PartyHabits(
        max_collective=size,
        title_max=title,
        p_own_doc=0.0 if supplier or not d.chance(0.15) else _u(d, 0.4, 1.0),
        fee_scale=math.exp(0.6 * d.z()),
        batch=batch,
        rate_boost=1.0 if not batch else min(12.0, math.exp(_u(d, 0.0, math.log(12.0)))),
    )
