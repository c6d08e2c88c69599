"""Learned knowledge as the lookups blocking and features read per request: the payer map
(`PayerIndex`) and the counterparties' payment habits (`HabitIndex`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cashmatch.domain.matching.codes import encode, expand, lookup
from cashmatch.domain.matching.tables import as_objects


@dataclass(frozen=True)
class PayerIndex:
    """`knowledge.payer_map` as lookups: the (counterparty, count) entries of each payer key.

    The payer map and its index cost more than a whole one-transfer prediction, so a model keeps
    the index of its own knowledge (see `TrainedMatcher`); a plain payer map is indexed on the fly.
    """

    ids: dict[str, int]  # payer key -> key id
    n_key: np.ndarray  # transfers seen per key id (float64)
    start: np.ndarray  # the entries of key id k are start[k]:start[k + 1]
    cps: np.ndarray  # counterparty id per entry (object)
    n: np.ndarray  # transfers per entry (float64)

    @classmethod
    def of(cls, payer: pd.DataFrame | None) -> PayerIndex:
        """Index a frame as `knowledge.payer_map` returns it."""
        if payer is None or payer.empty:
            empty = np.zeros(0)
            return cls({}, empty, np.zeros(1, dtype=np.int64), empty.astype(object), empty)
        ids: dict = {}
        codes = encode(as_objects(payer["payer_key"]), ids)
        order = np.argsort(codes, kind="stable")
        start = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(np.bincount(codes, minlength=len(ids)), out=start[1:])
        n_key = np.zeros(len(ids))
        n_key[codes[::-1]] = payer["n_key"].to_numpy(np.float64)[::-1]  # first row per key
        return cls(
            ids,
            n_key,
            start,
            np.array([str(c) for c in as_objects(payer["counterparty_id"])[order]], dtype=object),
            payer["n"].to_numpy(np.float64)[order],
        )

    @property
    def empty(self) -> bool:
        """Whether nothing is known."""
        return len(self.cps) == 0

    def entries(self, rows: np.ndarray, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(row, entry) for every entry of each row's key; unknown keys find nothing."""
        k = lookup(keys, self.ids)
        known = k >= 0
        k = k[known]
        return expand(rows[known], self.start[k], self.start[k + 1])


def payer_index(payer: pd.DataFrame | PayerIndex | None) -> PayerIndex:
    """The index of a payer map (itself if it is one already)."""
    return payer if isinstance(payer, PayerIndex) else PayerIndex.of(payer)


@dataclass(frozen=True)
class HabitIndex:
    """`knowledge.habit_table` as a lookup: counterparty -> (observations, oldest, newest share)."""

    values: dict[str, tuple[float, float, float]]

    @classmethod
    def of(cls, habits: pd.DataFrame | None) -> HabitIndex:
        """Index a frame as `knowledge.habit_table` returns it."""
        if habits is None or habits.empty:
            return cls({})
        rows = zip(
            (str(c) for c in habits["counterparty_id"].to_numpy(dtype=object)),
            habits["habit_n"].to_numpy(np.float64).tolist(),
            habits["oldest_share"].to_numpy(np.float64).tolist(),
            habits["newest_share"].to_numpy(np.float64).tolist(),
            strict=True,
        )
        return cls({cp: (n, old, new) for cp, n, old, new in rows})


def habit_index(habits: pd.DataFrame | HabitIndex | None) -> HabitIndex:
    """The index of a habit table (itself if it is one already)."""
    return habits if isinstance(habits, HabitIndex) else HabitIndex.of(habits)
