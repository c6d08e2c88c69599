"""Integer codes for hashable values, and the bucket joins blocking and features build on them."""

from __future__ import annotations

from collections.abc import Hashable, Iterable

import numpy as np

# Values become codes through plain dicts and matches are expanded with numpy, so a join costs
# the pairs it produces, not a pandas merge's fixed overhead per call (which dominates a request
# of one transfer and fifty invoices).


def encode(values: Iterable[Hashable], vocab: dict) -> np.ndarray:
    """Integer code of every value, adding the values `vocab` does not know yet."""
    return np.fromiter((vocab.setdefault(v, len(vocab)) for v in values), np.int64)


def lookup(values: Iterable[Hashable], vocab: dict) -> np.ndarray:
    """Integer code of every value in `vocab`, -1 for the unknown ones."""
    return np.fromiter((vocab.get(v, -1) for v in values), np.int64)


def expand(ids: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(id, position) for every position in [lo, hi) of each id, in id order."""
    counts = np.maximum(hi - lo, 0)
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(ids, counts), np.arange(total) - starts + np.repeat(lo, counts)


class Buckets:
    """Row positions grouped by an integer key; the rows of one key stay in ascending order."""

    def __init__(self, keys: np.ndarray, n_keys: int) -> None:
        self.order = np.argsort(keys, kind="stable")
        self.start = np.zeros(n_keys + 1, dtype=np.int64)
        np.cumsum(np.bincount(keys, minlength=n_keys), out=self.start[1:])

    def sizes(self, keys: np.ndarray) -> np.ndarray:
        """Rows per key (0 for the keys < 0, which stand for 'unknown')."""
        out = np.zeros(len(keys), dtype=np.int64)
        known = keys >= 0
        k = keys[known]
        out[known] = self.start[k + 1] - self.start[k]
        return out

    def expand(self, ids: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(id, row) for every row of the key of each id; keys < 0 find nothing."""
        known = keys >= 0
        ids, keys = ids[known], keys[known]
        out_ids, pos = expand(ids, self.start[keys], self.start[keys + 1])
        return out_ids, self.order[pos]
