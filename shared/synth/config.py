"""`SynthConfig`: what to simulate. A module of its own, so the simulation's modules can read
the config without importing `generator`, which imports them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SynthConfig:
    """What to simulate; the same config always yields the same data."""

    months: int = 8
    start: str = "2025-01"  # first month, YYYY-MM
    seed: int = 7
    scale: float = 1.0  # multiplies the number of counterparties and transfers
    profile: str = "default"  # "default" | "messy"
    shift_from: str | None = None  # from this month (YYYY-MM) on, payment habits drift
