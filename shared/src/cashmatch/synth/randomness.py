"""Randomness: numpy Generators seeded per (seed, stream, counterparty), and cheap scalar draws
from them. Each stream has its number here, so adding draws to one leaves the others alone.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")

STREAM_WORLD, STREAM_PARTY, STREAM_INVOICES, STREAM_PLAN, STREAM_TEXT, STREAM_OTHER = range(6)


def stream_rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, index)))


class Draw:
    """Scalar draws from one seeded Generator, buffered: a scalar Generator call costs ~1 µs."""

    __slots__ = ("_rng", "_u", "_ui", "_z", "_zi", "rng")

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._u: list[float] = []
        self._ui = 0
        self._z: list[float] = []
        self._zi = 0

    def u(self) -> float:
        if self._ui == len(self._u):
            self._u = self.rng.random(64).tolist()
            self._ui = 0
        self._ui += 1
        return self._u[self._ui - 1]

    def z(self) -> float:
        if self._zi == len(self._z):
            self._z = self.rng.standard_normal(32).tolist()
            self._zi = 0
        self._zi += 1
        return self._z[self._zi - 1]

    def chance(self, p: float) -> bool:
        return self.u() < p

    def integer(self, lo: int, hi: int) -> int:
        """Uniform on lo..hi inclusive."""
        return lo + min(int(self.u() * (hi - lo + 1)), hi - lo)

    def pick(self, items: Sequence[T]) -> T:
        return items[min(int(self.u() * len(items)), len(items) - 1)]

    def digits(self, n: int) -> str:
        """n random decimal digits; a double carries 15 of them safely."""
        chunks = []
        while n > 0:
            k = min(n, 15)
            chunks.append(f"{int(self.u() * 10**k):0{k}d}")
            n -= k
        return "".join(chunks)


class Choice(Generic[T]):
    """A fixed weighted choice, drawn with one uniform."""

    def __init__(self, pairs: Sequence[tuple[T, float]]) -> None:
        self.items = [item for item, _ in pairs]
        self.cum = list(itertools.accumulate(w for _, w in pairs))

    def __call__(self, d: Draw) -> T:
        i = bisect.bisect_right(self.cum, d.u() * self.cum[-1])
        return self.items[min(i, len(self.items) - 1)]


def weighted_index(cum: Sequence[float], u: float) -> int:
    return min(bisect.bisect_right(cum, u * cum[-1]), len(cum) - 1)
