"""The train/test split: deterministic by transfer id, so a rebuild always splits the same way."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd


def is_test_transfer(transfer_ids: pd.Series, fraction: float, seed: int) -> np.ndarray:
    """True for transfers that belong to the test set (a stable hash of seed and id)."""
    salt = str(seed).encode()
    buckets = np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(salt + str(t).encode(), digest_size=8).digest(), "big")
            for t in transfer_ids
        ),
        dtype=np.uint64,
        count=len(transfer_ids),
    )
    return (buckets / float(2**64)) < fraction


def months_between(first: str, last: str) -> list[str]:
    """Every month from `first` to `last` inclusive, as YYYY-MM."""
    periods = pd.period_range(first, last, freq="M")
    return [str(p) for p in periods]
