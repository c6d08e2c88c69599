"""A month matched chunk by chunk: memory for one chunk's candidate pairs, not the month's.

A chunk is a run of whole booking days, in booking order, of about `size` transfers. Every
chunk is blocked against the month's open invoices (`Prepared.with_transfers`: the invoice side
is prepared once) with the payer knowledge of the months before, which the month itself does not
change. What a transfer's options are depends on its own candidates only (`settlement.first_pass`,
the costly part, runs on chunks independently: the "map"); what it finally gets depends on the
transfers booked before it, which `settlement.settle` walks in booking order, carrying the open
invoices (`Books`) from one chunk to the next (the "reduce"). A day is never split: within a
day the surest transfer settles first, which needs the whole day's options.

With one chunk this is exactly the whole-month prediction; with several, the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Chunk:
    """One chunk of a month: its key (first and last booking day) and transfer positions."""

    key: str  # "YYYY-MM-DD..YYYY-MM-DD": how a failing chunk is reported
    positions: np.ndarray  # into the month's transfers, in their order (int64)


def day_chunks(days: np.ndarray, size: int | None) -> list[Chunk]:
    """Whole booking days (days since the epoch, one per transfer) grouped into chunks of at
    most `size` transfers (a larger day is a chunk of its own), in booking order.

    `size` None (or 0): one chunk of everything, whatever the days (and one empty chunk when
    nothing is booked, so that the output keeps its columns).
    """
    days = np.asarray(days, dtype=np.int64)
    if size is not None and size < 0:
        raise ValueError(f"chunk size must be positive, got {size}")
    if len(days) == 0 or not size:  # nothing booked: one empty chunk, as the whole month is
        key = _key(days.min(), days.max()) if len(days) else "empty"
        return [Chunk(key, np.arange(len(days), dtype=np.int64))]
    uniq, counts = np.unique(days, return_counts=True)
    chunks: list[Chunk] = []
    first, total = 0, 0
    for k, n in enumerate(counts.tolist()):
        if total and total + n > size:
            chunks.append(_chunk(days, uniq[first], uniq[k - 1]))
            first, total = k, 0
        total += n
    chunks.append(_chunk(days, uniq[first], uniq[-1]))
    return chunks


def _chunk(days: np.ndarray, lo: int, hi: int) -> Chunk:
    return Chunk(_key(lo, hi), np.flatnonzero((days >= lo) & (days <= hi)).astype(np.int64))


def _key(lo: int, hi: int) -> str:
    first, last = (str(np.datetime64(int(d), "D")) for d in (lo, hi))
    return first if first == last else f"{first}..{last}"


def take_rows(table: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """The rows of a chunk, renumbered from 0 (what `prepare` gives positions to)."""
    return table.iloc[positions].reset_index(drop=True)


def in_input_order(frames: list[pd.DataFrame], row_positions: list[np.ndarray]) -> pd.DataFrame:
    """Chunks' output rows back in the order of the month's transfers (stable per transfer)."""
    if not frames:
        raise ValueError("no chunks to put together")
    frame = pd.concat(frames, ignore_index=True)
    order = np.argsort(np.concatenate(row_positions), kind="stable")
    return frame.take(order).reset_index(drop=True)


class ChunkFailed(Exception):
    """A chunk of a month could not be matched; names it by key (its booking days)."""

    def __init__(self, key: str, cause: BaseException | str) -> None:
        super().__init__(f"chunk {key} failed: {cause}")
        self.key = key
