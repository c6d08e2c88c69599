"""Counterparty-wide options: sets drawn from all of one counterparty's open invoices.

The 12-candidate enumeration (`subsets.py`) cannot hold a collective of 10-25 invoices whose
title names few of them. A customer paying that many at once pays a period: every open
invoice issued (so, roughly, due) in a stretch of time, its credit notes netted in, now and
then leaving out one it disputes. So, over the counterparty's candidates in issue order:

- windows: every run of consecutive invoices (a period; a run from the oldest is "everything
  open up to date D", the whole run is the open balance), with the credit notes inside it; and
  the same run of invoices with all the counterparty's credit notes netted in (a credit note
  is often issued well after its invoice, outside the run);
- holes: the shortest runs from the oldest invoices that overshoot the amount, less the few
  invoices whose sum is the overshoot (an exact bounded subset-sum over the run, `subset_sum`);
- any subset: an exact subset-sum over all of them (credit notes as negative amounts), bounded
  in states, when no window explains the amount exactly.

Everything is in integer cents. All of it runs only for a transfer larger than any single
open invoice of the counterparty (only a set can pay it), so single payments pay nothing.
"""

from __future__ import annotations

import numpy as np

from cashmatch.domain.matching.subset_sum import subset_sums

MAX_WINDOW_ITEMS = 80  # a counterparty's candidates considered (issue order, oldest first)
WINDOWS_KEPT = 2
HOLE_STARTS = 2  # runs starting at the 2 oldest invoices are tried with holes
HOLE_STATES = 2_000
ANY_STATES = 2_000  # then the meet in the middle, up to 30 items (subset_sum)
ANY_MIN = 9  # fewer candidates of one counterparty: the 12-candidate enumeration has them

KIND_PERIOD, KIND_CP_SUM = 6, 7  # after assembly's kinds


def _cents(x: np.ndarray | float) -> np.ndarray:
    return np.rint(np.asarray(x, dtype=np.float64) * 100).astype(np.int64)


def counterparty_sets(
    mine: np.ndarray,
    open_amt: np.ndarray,
    gain: np.ndarray,
    amount: float,
    max_fee: float,
    max_discount: float,
) -> list[tuple[int, np.ndarray]]:
    """(kind, pair rows) options for one transfer from one counterparty's candidates `mine`
    (pair rows sorted by issue, oldest first); `gain` is each pair's log-odds (log p - log q)."""
    mine = mine[:MAX_WINDOW_ITEMS]
    opens = open_amt[mine]
    if len(mine) < 2 or opens.max() >= amount - 0.011:
        return []
    c = _cents(opens)
    lo = int(_cents(amount))
    hi = int(np.floor((amount * (1 + max_discount) + max_fee) * 100 + 0.5))
    out: list[tuple[int, np.ndarray]] = []
    exact = _windows(mine, c, gain, lo, hi, out)
    if not exact:
        _holes(mine, c, lo, hi, out)
        if len(mine) >= ANY_MIN:
            found = subset_sums(c, lo - 1, lo + 1, 2, ANY_STATES, weight=gain[mine])
            out += [(KIND_CP_SUM, mine[s]) for s in found.subsets if len(s) >= 2]
    return out


def _windows(
    mine: np.ndarray,
    c: np.ndarray,
    gain: np.ndarray,
    lo: int,
    hi: int,
    out: list[tuple[int, np.ndarray]],
) -> bool:
    """Runs of consecutive invoices (with their credit notes; or with all of them) that explain
    the amount, likeliest first; True when one is exact."""
    credit = c < 0
    g = gain[mine]
    any_exact = False
    for with_all_credits in (False, True):
        if with_all_credits and not credit.any():
            break
        idx = np.flatnonzero(~credit) if with_all_credits else np.arange(len(c))
        base = int(c[credit].sum()) if with_all_credits else 0
        g_base = float(g[credit].sum()) if with_all_credits else 0.0
        cs = np.concatenate([[0], np.cumsum(c[idx])])
        gs = np.concatenate([[0.0], np.cumsum(g[idx])])
        i, j = np.triu_indices(len(idx) + 1, k=2)  # window idx[i:j], at least two items
        sums = cs[j] - cs[i] + base
        ok = (sums >= lo - 1) & (sums <= hi)
        if not ok.any():
            continue
        is_exact = np.abs(sums[ok] - lo) <= 1
        ll = gs[j[ok]] - gs[i[ok]] + g_base
        # exact sums first, then the likeliest
        best = np.lexsort((-ll, ~is_exact))[:WINDOWS_KEPT]
        any_exact |= bool(is_exact[best].any())
        for b in best.tolist():
            rows = idx[i[ok][b] : j[ok][b]]
            if with_all_credits:
                rows = np.union1d(rows, np.flatnonzero(credit))
            out.append((KIND_PERIOD, mine[rows]))
    return any_exact


def _holes(
    mine: np.ndarray,
    c: np.ndarray,
    lo: int,
    hi: int,
    out: list[tuple[int, np.ndarray]],
) -> None:
    """The shortest runs from the oldest invoices that overshoot the amount, less the invoices
    (not credit notes) whose sum is the overshoot."""
    cs = np.cumsum(c)
    for start in range(min(HOLE_STARTS, len(c))):
        run_sums = cs[start:] - (cs[start - 1] if start else 0)
        over = np.flatnonzero(run_sums > hi)
        if not len(over):
            return
        end = start + int(over[0]) + 1
        run = np.arange(start, end)
        excess = int(run_sums[over[0]])
        positive = run[c[run] > 0]
        # the holes: invoices whose sum is the overshoot (the programme only: a cheap try)
        # the holes leaving the amount exactly first, then within the fee / discount window
        for h_lo, h_hi in ((excess - lo - 1, excess - lo + 1), (excess - hi, excess - lo + 1)):
            found = subset_sums(c[positive], h_lo, h_hi, 1, HOLE_STATES, exhaustive=False)
            if found.subsets:
                break
        for holes in found.subsets:
            rows = np.setdiff1d(run, positive[holes])
            if len(rows) >= 2:
                out.append((KIND_CP_SUM, mine[rows]))
