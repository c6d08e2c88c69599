"""`SynthConfig`: what to simulate. A module of its own, so the simulation's modules can read
the config without importing `generator`, which imports them.
"""

from __future__ import annotations

from dataclasses import dataclass

from cashmatch.synth.bank_calendar import parse_month
from cashmatch.synth.profiles import PROFILE_PARAMETERS, PROFILES


@dataclass(frozen=True)
class SynthConfig:
    """What to simulate; the same config always yields the same data."""

    months: int = 8
    start: str = "2025-01"  # first month, YYYY-MM
    seed: int = 7
    scale: float = 1.0  # multiplies the number of counterparties and transfers
    profile: str = "default"  # "default" | "messy"
    shift_from: str | None = None  # from this month (YYYY-MM) on, payment habits drift
    # From this month (YYYY-MM) on, subscription customers with equal invoices open pay the
    # newest first (the `shift` scenario): the same features as before, the other answer.
    switch_from: str | None = None
    # Share of counterparties whose titles are structured: an ISO 11649 RF creditor reference
    # (our invoices print one built from the number) or SEPA tags (EREF+, MREF+, SVWZ+ ...).
    # 0 draws nothing, so the profiles' data stay as they were.
    structured: float = 0.0
    # Seed of the habit randomizer (synth/habit_draws.py): population shares and per-counterparty
    # habits drawn around the profile. None: the profile exactly as it is.
    habits: int | None = None

    def __post_init__(self) -> None:
        """ValueError naming the first bad field: a config that exists can be simulated."""
        if self.months < 1:
            raise ValueError(f"months must be at least 1, got {self.months}")
        if not 0.0 <= self.structured <= 1.0:
            raise ValueError(f"structured must be a share in [0, 1], got {self.structured}")
        if self.habits is not None and (isinstance(self.habits, bool) or self.habits < 0):
            raise ValueError(f"habits must be a non-negative seed or None, got {self.habits!r}")
        if not self.scale > 0:
            raise ValueError(f"scale must be positive, got {self.scale}")
        if self.profile not in PROFILE_PARAMETERS:
            raise ValueError(f"profile must be one of {PROFILES}, got {self.profile!r}")
        y, m = parse_month(self.start, "start")
        if self.shift_from is not None:
            sy, sm = parse_month(self.shift_from, "shift_from")
            offset = (sy - y) * 12 + sm - m
            if not 0 <= offset < self.months:
                raise ValueError(f"shift_from {self.shift_from} is outside the simulated months")
        if self.switch_from is not None:
            sy, sm = parse_month(self.switch_from, "switch_from")
            offset = (sy - y) * 12 + sm - m
            if not 0 < offset < self.months:
                raise ValueError(
                    f"switch_from {self.switch_from} must be a simulated month after the first"
                )
