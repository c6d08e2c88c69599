"""Exact subset-sum over all of a counterparty's open invoices, in cents, with a state bound.

`subsets.py` enumerates every subset of the 12 best candidates (4096 sums, one matrix product).
A collective payment of 10-25 invoices whose title names few or none of them needs all of the
counterparty's open invoices, tens of them, credit notes included: 2**40 subsets is out of
reach, so this is a dynamic programme over the distinct partial sums (integer cents, so equal
sums merge exactly) with two prunings and a bound:

- a partial sum is dropped once the items still to come cannot bring it into the target window
  (the positives left are too few to reach it, or the credit notes left cannot pull it back);
- when the target is more than half the total, the programme looks for the invoices left out
  instead (their sum is the total less the target): paying "everything but a few" is the common
  case of a customer clearing its balance, and its complement is small;
- the number of distinct partial sums kept is bounded (`max_states`); when the bound is hit the
  search stops extending and says so (`complete=False`): the subsets found so far are still
  exact answers, and the caller keeps its other options (the 12-candidate enumeration, the
  period runs), so a hit bound costs coverage, never correctness or time.

When the programme hits its bound on up to `MITM_MAX` (30) items, a meet in the middle takes
over: all subset sums of each half (2**15), one half sorted, the other looked up in it; exact
and complete, 65k states. Beyond that, work is at most `len(cents) * max_states` states
whatever the amounts: never exponential.
Of equal sums the one reached first is kept, so items given first (the likeliest) are preferred.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_STATES = 20_000
MITM_MAX = 30  # up to 30 items: meet in the middle, 2 x 2**15 sums, exact and complete


@dataclass(frozen=True)
class SubsetSum:
    """Subsets (item positions, sorted) whose sums fall in the window, closest to `lo` first."""

    subsets: list[np.ndarray]
    states: int  # partial sums generated: the work done
    complete: bool  # False: the state bound was hit and the search stopped extending


def subset_sums(
    cents: np.ndarray,
    lo: int,
    hi: int,
    keep: int = 2,
    max_states: int = MAX_STATES,
    weight: np.ndarray | None = None,
    exhaustive: bool = True,
) -> SubsetSum:
    """Up to `keep` subsets of `cents` (int, negatives allowed) whose sum lies in [lo, hi].

    Many subsets of tens of invoices share one sum to the cent; of those, the meet in the middle
    returns the ones of the largest total `weight` (the pair scores' log-odds), the programme
    the ones reached first (items given first). The empty set is never returned. Raises
    ValueError for a window with lo > hi. `exhaustive=False`: no meet in the middle after a hit
    bound (the caller has cheaper options to fall back on).
    """
    a = np.asarray(cents, dtype=np.int64)
    if lo > hi:
        raise ValueError(f"subset_sums: empty window, lo {lo} > hi {hi}")
    total = int(a.sum())
    if len(a) and lo > total - lo:
        # complement: leave out items summing to [total - hi, total - lo]
        found = _search(a, total - hi, total - lo, keep + 1, max_states, allow_empty=True)
        every = np.arange(len(a))
        subsets = [np.setdiff1d(every, s) for s in found.subsets]
        found = SubsetSum([s for s in subsets if len(s)][:keep], found.states, found.complete)
    else:
        found = _search(a, lo, hi, keep, max_states, allow_empty=False)
    # The programme is cheap and complete when few partial sums fit the window (a small
    # target, or nearly everything); otherwise the meet in the middle, up to 30 items.
    if found.complete or not exhaustive or not 2 <= len(a) <= MITM_MAX:
        return found
    w = np.zeros(len(a)) if weight is None else np.asarray(weight, dtype=np.float64)
    mitm = _meet_in_the_middle(a, w, lo, hi, keep)
    return SubsetSum(mitm.subsets, found.states + mitm.states, True)


def _half_sums(a: np.ndarray) -> np.ndarray:
    """All 2**len(a) subset sums; bit k of a sum's position says whether item k is in."""
    sums = np.zeros(1, dtype=a.dtype)
    for x in a.tolist():
        sums = np.concatenate([sums, sums + x])
    return sums


MITM_HITS = 4096  # matches collected before choosing: a wide window can hold millions


def _meet_in_the_middle(a: np.ndarray, w: np.ndarray, lo: int, hi: int, keep: int) -> SubsetSum:
    """Every subset's sum from the sums of two halves: sort one half, look each sum of the other
    up in it (searchsorted over the window); 2**(n/2) work instead of 2**n."""
    h = len(a) // 2
    left, right = _half_sums(a[:h]), _half_sums(a[h:])
    w_left, w_right = _half_sums(w[:h]), _half_sums(w[h:])
    r_order = np.argsort(right, kind="stable")
    r_sorted = right[r_order]
    start = np.searchsorted(r_sorted, lo - left, "left")
    stop = np.searchsorted(r_sorted, hi - left, "right")
    states = len(left) + len(right)
    hits = np.flatnonzero(stop > start)
    out: list[tuple[int, float, int, int]] = []  # (distance from lo, -weight, left, right)
    for li in hits.tolist():
        for rj in range(int(start[li]), int(stop[li])):
            if li == 0 and r_order[rj] == 0:
                continue  # the empty set
            r = int(r_order[rj])
            out.append((int(left[li] + right[r]) - lo, -float(w_left[li] + w_right[r]), li, r))
            if len(out) >= MITM_HITS:
                break
        if len(out) >= MITM_HITS:
            break
    out.sort()
    subsets = []
    for _, _, li, rj in out[:keep]:
        members = [k for k in range(h) if li >> k & 1] + [
            h + k for k in range(len(a) - h) if rj >> k & 1
        ]
        subsets.append(np.array(members, dtype=np.int64))
    return SubsetSum(subsets, states, True)


def _search(
    a: np.ndarray, lo: int, hi: int, keep: int, max_states: int, allow_empty: bool
) -> SubsetSum:
    n = len(a)
    pos_rest = np.append(np.cumsum(np.clip(a, 0, None)[::-1])[::-1], 0)  # positives from k on
    neg_rest = np.append(np.cumsum(np.clip(a, None, 0)[::-1])[::-1], 0)
    # every node of the search: its partial sum, its parent node and the item it added
    parent = [np.array([-1], dtype=np.int64)]
    item = [np.array([-1], dtype=np.int64)]
    sums = np.array([0], dtype=np.int64)
    node = np.array([0], dtype=np.int64)
    n_nodes, states, complete = 1, 0, True
    for k in range(n):
        new = sums + a[k]
        states += len(new)
        ids = np.arange(n_nodes, n_nodes + len(new))
        parent.append(node)
        item.append(np.full(len(new), k, dtype=np.int64))
        n_nodes += len(new)
        all_sums = np.concatenate([sums, new])
        all_nodes = np.concatenate([node, ids])
        # viable: the items after k can still bring the sum into [lo, hi]
        ok = (all_sums + pos_rest[k + 1] >= lo) & (all_sums + neg_rest[k + 1] <= hi)
        all_sums, all_nodes = all_sums[ok], all_nodes[ok]
        # equal sums merge; the first (the old one: fewer, earlier items) is kept
        sums, first = np.unique(all_sums, return_index=True)
        node = all_nodes[first]
        if len(sums) > max_states:
            complete = False
            hit = (sums >= lo) & (sums <= hi)
            sums, node = sums[hit], node[hit]  # what already fits stays an answer
            break
    hit = (sums >= lo) & (sums <= hi)
    if not allow_empty:
        hit &= node != 0
    order = np.argsort(sums[hit] - lo, kind="stable")[:keep]
    par, itm = np.concatenate(parent), np.concatenate(item)
    out = []
    for v in node[hit][order].tolist():
        members = []
        while v > 0:
            members.append(int(itm[v]))
            v = int(par[v])
        out.append(np.array(sorted(members), dtype=np.int64))
    return SubsetSum(out, states, complete)
