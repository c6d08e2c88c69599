"""A paired difference between candidate and champion on one metric, and how it reads.

Kept apart from `paired` (which computes them and needs the matching metrics and scipy) so the
settings, which hold the gates, import nothing heavy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

PAIR_METRICS = ("pair_f1", "pair_precision", "pair_recall")
AUTO_RATE = re.compile(r"^auto_rate@(\d+(?:\.\d+)?)$")


def supports(metric: str) -> bool:
    """Whether `compare` can test a difference in `metric`."""
    if metric == "exact_set_accuracy" or metric in PAIR_METRICS:
        return True
    found = AUTO_RATE.match(metric)
    return found is not None and 0 < float(found.group(1)) <= 100


@dataclass(frozen=True)
class Difference:
    """Candidate minus champion on one metric, with its (1 − alpha) interval."""

    metric: str
    candidate: float
    champion: float
    low: float
    high: float
    level: float  # e.g. 0.95
    method: Literal["McNemar", "paired bootstrap"]
    n: int  # transfers compared
    better: int | None = None  # McNemar: transfers only the candidate gets exactly right
    worse: int | None = None  # ... only the champion gets exactly right
    p_value: float | None = None
    resamples: int | None = None

    @property
    def delta(self) -> float:
        """Candidate minus champion."""
        return self.candidate - self.champion

    @property
    def direction(self) -> Literal["better", "worse", "tie"]:
        """Significantly better or worse at 1 − level (the interval excludes 0), else a tie."""
        if self.low > 0.0:
            return "better"
        if self.high < 0.0:
            return "worse"
        return "tie"

    def words(self) -> str:
        """E.g. 'exact_set_accuracy: 12 better, 9 worse of 3,020; McNemar p=0.66; Δ +0.0010,
        95% CI [−0.0019, +0.0040]'."""
        ci = f"{self.level:.0%} CI [{_signed(self.low)}, {_signed(self.high)}]"
        head = f"{self.metric} {self.candidate:.4f} vs champion {self.champion:.4f}"
        if self.method == "McNemar":
            return (
                f"{head}: {self.better} better, {self.worse} worse of {self.n:,}; "
                f"McNemar p={_p(self.p_value)}; Δ {_signed(self.delta)}, {ci}"
            )
        return (
            f"{head}: Δ {_signed(self.delta)}, {self.level:.0%} paired-bootstrap CI "
            f"[{_signed(self.low)}, {_signed(self.high)}], {self.resamples:,} resamples"
        )

    def brief(self, *, interval: bool = True) -> str:
        """The few words a verdict's first reason gives, e.g. 'exact-set: 12 better, 9 worse of
        3,020; McNemar p=0.66' or 'Δ auto_rate@99 +0.0003, 95% CI [−0.0020, +0.0030]'."""
        ci = f"Δ {self.metric} {_signed(self.delta)}, {self.level:.0%} CI "
        ci += f"[{_signed(self.low)}, {_signed(self.high)}]"
        if self.method != "McNemar":
            return ci
        counts = f"exact-set: {self.better} better, {self.worse} worse of {self.n:,}; "
        counts += f"McNemar p={_p(self.p_value)}"
        return f"{counts}; {ci}" if interval else counts


def _signed(x: float) -> str:
    # A true minus sign reads better in reports; "+0.0000" marks a tie as such.
    return f"{x:+.4f}".replace("-", "−")


def _p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return f"{p:.2g}" if p < 0.01 else f"{p:.2f}"
