"""Bounded subset-sum: which groups of open invoices explain a transfer amount.

A transfer may settle several invoices at once, net credit notes in, and arrive a little short
because the payer's bank took a fee or the payer took an early-payment discount. Enumerating all
subsets of at most `MAX_POOL` invoices is 2**12 = 4096 sums per transfer, one small matrix
product, so the search never explodes however many invoices a counterparty has open.
"""

from __future__ import annotations

import numpy as np

MAX_POOL = 12
EXACT_TOL = 0.011  # cents: amounts are rounded to 2 decimals

_MASKS = {
    k: ((np.arange(2**k)[:, None] >> np.arange(k)) & 1).astype(bool) for k in range(1, MAX_POOL + 1)
}

# Made once: converting and counting 4096 masks costs more than the search itself.
_FLOAT_MASKS = {k: m.astype(np.float64) for k, m in _MASKS.items()}
_SIZES = {k: m.sum(axis=1) for k, m in _MASKS.items()}


def masks(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All 2**k subsets of k items as a boolean matrix (row 0 is the empty set), the same as
    floats (to sum amounts with a matrix product), and the size of each subset."""
    return _MASKS[k], _FLOAT_MASKS[k], _SIZES[k]


def _exact_and_within(
    sums: np.ndarray, target: float | np.ndarray, max_fee: float, max_discount: float
) -> tuple[np.ndarray, np.ndarray]:
    exact = np.abs(sums - target) <= EXACT_TOL
    tol = (sums >= target - EXACT_TOL) & (sums <= target * (1 + max_discount) + max_fee + EXACT_TOL)
    return exact, tol


def fits(
    sums: np.ndarray, target: float | np.ndarray, max_fee: float, max_discount: float
) -> np.ndarray:
    """How each sum explains `target` (fees/discounts allowed): 0 not, 1 within tol, 2 exact."""
    exact, tol = _exact_and_within(sums, target, max_fee, max_discount)
    return np.where(exact, 2, np.where(tol, 1, 0)).astype(np.int8)


def explains(
    sums: np.ndarray, target: float | np.ndarray, max_fee: float, max_discount: float
) -> np.ndarray:
    """Whether each sum explains `target`: `fits(...) > 0`, cheaper."""
    exact, tol = _exact_and_within(sums, target, max_fee, max_discount)
    return exact | tol


def explaining_subsets(
    amounts: np.ndarray, target: float, max_fee: float, max_discount: float, min_size: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Subsets (bool rows over `amounts`) of at least `min_size` items that explain `target`.

    Returns the masks and, per mask, 2 for an exact sum and 1 for a sum within tolerance.
    """
    k = len(amounts)
    if k < min_size or k > MAX_POOL:
        return np.zeros((0, k), dtype=bool), np.zeros(0, dtype=np.int8)
    m = _MASKS[k]
    sizes = m.sum(axis=1)
    sums = m.astype(np.float64) @ amounts
    f = fits(sums, target, max_fee, max_discount)
    keep = (f > 0) & (sizes >= min_size)
    return m[keep], f[keep]
