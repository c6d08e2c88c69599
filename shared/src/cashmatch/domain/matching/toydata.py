"""A small, independent generator of contract-shaped data for unit tests and sanity checks.

It is deliberately simple and different from the project simulator (`cashmatch.synth`), so that the
matcher is checked against a second source of data and not tuned to one generator's habits. Each
transfer carries the noise pattern that produced it (`pattern`), for per-pattern checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

PATTERNS = (
    "exact",
    "typo",
    "separators",
    "zeros",
    "seq_only",
    "no_ref",
    "multi",
    "multi_credit",
    "partial",
    "fee",
    "discount",
    "third_party",
    "subscription",
    "none",
)


@dataclass
class ToyData:
    """Flat contract frames plus the pattern of each transfer."""

    invoices: pd.DataFrame
    transfers: pd.DataFrame
    matches: pd.DataFrame
    patterns: pd.DataFrame  # transfer_id, pattern


# Words the counterparties' names are made of.
_WORDS = [
    "ALPHA",
    "BETA",
    "NOVA",
    "ORBIT",
    "DELTA",
    "KRONOS",
    "VEGA",
    "LUMEN",
    "PIXEL",
    "TERRA",
    "FJORD",
    "CEDAR",
]


def _iban(rng: np.random.Generator) -> str:
    return "DE" + "".join(str(d) for d in rng.integers(0, 10, 20))


def toy_data(
    n_months: int = 6, per_month: int = 120, n_counterparties: int = 40, seed: int = 0
) -> ToyData:
    """Generate `n_months` months of receivables, payments and labels with every noise pattern."""
    rng = np.random.default_rng(seed)
    cps = _counterparties(n_counterparties, rng)
    payers = {c["id"]: (f"FACTOR BANK {k}", _iban(rng)) for k, c in enumerate(cps) if k % 9 == 4}
    book = _Book()
    transfers: list[dict] = []
    matches: list[dict] = []
    patterns: list[dict] = []
    start = pd.Timestamp("2024-01-01")
    tid = 0
    for m in range(n_months):
        month_start = start + pd.DateOffset(months=m)
        _issue_month(book, cps, month_start, rng)
        # Transfers are generated in booking order, so "earlier" means booked earlier.
        for offset in np.sort(rng.integers(10, 28, per_month)):
            tid += 1
            t_id = f"T{tid:06d}"
            day = month_start + pd.Timedelta(days=int(offset))
            pattern = str(rng.choice(PATTERNS))
            cp = _paying_counterparty(book, cps, m, rng)
            mine, credits = book.open_of(cp["id"], day)
            pattern = _possible_pattern(pattern, cp, mine, credits)
            amount, title, name, iban, paid = _payment(pattern, cp, mine, credits, payers, rng)
            for v, a in paid:
                matches.append({"transfer_id": t_id, "invoice_id": v["invoice_id"], "amount": a})
                book.settle(v["invoice_id"], a)
            transfers.append(
                {
                    "transfer_id": t_id,
                    "booking_date": day,
                    "direction": "incoming",
                    "amount": round(amount, 2),
                    "currency": "EUR",
                    "counterparty_name": name,
                    "counterparty_iban": iban,
                    "title": title,
                }
            )
            patterns.append({"transfer_id": t_id, "pattern": pattern})
    inv = pd.DataFrame(book.invoices)
    tr = pd.DataFrame(transfers)
    mt = pd.DataFrame(matches)
    mt["matched_at"] = pd.Timestamp("2025-01-01")
    return ToyData(inv, tr, mt, pd.DataFrame(patterns))


def _counterparties(n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """`n` counterparties; every fifth subscribes (one equal invoice a month)."""
    cps: list[dict[str, Any]] = []
    for c in range(n):
        name = f"{_WORDS[c % len(_WORDS)]} {_WORDS[(c * 7 + 3) % len(_WORDS)]} {c} GMBH"
        cps.append(
            {
                "id": f"C{c:04d}",
                "name": name,
                "iban": _iban(rng),
                "tax": f"DE{rng.integers(10**8, 10**9)}",
                "sub": c % 5 == 0,
                "newest_first": c % 20 == 5,  # a few subscribers always pay the latest invoice
                "fee": float(rng.choice([100.0, 250.0, 99.0])),
            }
        )
    return cps


class _Book:
    """The invoices issued so far, and the open amount of those not yet settled."""

    def __init__(self) -> None:
        self.invoices: list[dict] = []
        self.open_inv: dict[str, dict] = {}
        self.seq = 0

    def issue(self, cp: dict, day: pd.Timestamp, amount: float) -> dict:
        """A new invoice of `cp`, open in full."""
        self.seq += 1
        seq = self.seq
        inv = {
            "invoice_id": f"I{seq:06d}",
            "invoice_number": f"INV-{day.year}-{seq:05d}",
            "direction": "receivable",
            "counterparty_id": cp["id"],
            "counterparty_name": cp["name"],
            "counterparty_tax_id": cp["tax"],
            "counterparty_iban": cp["iban"],
            "currency": "EUR",
            "amount": round(amount, 2),
            "issue_date": day,
            "due_date": day + pd.Timedelta(days=14),
        }
        self.invoices.append(inv)
        self.open_inv[inv["invoice_id"]] = dict(inv, open=inv["amount"])
        return inv

    def open_of(self, cp_id: str, day: pd.Timestamp) -> tuple[list[dict], list[dict]]:
        """The counterparty's open invoices issued by `day`, oldest first, and its credit notes."""
        mine = sorted(
            (
                v
                for v in self.open_inv.values()
                if v["counterparty_id"] == cp_id and v["open"] > 0 and v["issue_date"] <= day
            ),
            key=lambda v: v["issue_date"],
        )
        credits = [
            v
            for v in self.open_inv.values()
            if v["counterparty_id"] == cp_id and v["open"] < 0 and v["issue_date"] <= day
        ]
        return mine, credits

    def settle(self, invoice_id: str, amount: float) -> None:
        """`amount` paid on the invoice; settled in full, it is no longer open."""
        self.open_inv[invoice_id]["open"] = round(self.open_inv[invoice_id]["open"] - amount, 2)
        if abs(self.open_inv[invoice_id]["open"]) < 0.005:
            self.open_inv.pop(invoice_id)


def _issue_month(
    book: _Book, cps: list[dict[str, Any]], month_start: pd.Timestamp, rng: np.random.Generator
) -> None:
    """A month's invoices: one per subscriber, 2-5 per other counterparty, sometimes a credit."""
    for cp in cps:
        n_new = 1 if cp["sub"] else int(rng.integers(2, 6))
        for _ in range(n_new):
            day = month_start + pd.Timedelta(days=int(rng.integers(0, 10)))
            amt = cp["fee"] if cp["sub"] else float(rng.integers(50, 5000)) + 0.5
            book.issue(cp, day, amt)
        if rng.random() < 0.15 and not cp["sub"]:
            book.issue(cp, month_start, -float(rng.integers(10, 40)))


def _paying_counterparty(
    book: _Book, cps: list[dict[str, Any]], m: int, rng: np.random.Generator
) -> dict[str, Any]:
    """A counterparty owing money (the first one if none does)."""
    by_id = {c["id"]: c for c in cps}
    # Subscribers pay quarterly, so several equal invoices are open and the oldest goes.
    owing = sorted(
        {
            v["counterparty_id"]
            for v in book.open_inv.values()
            if v["open"] > 0 and (m % 3 == 2 or not by_id[v["counterparty_id"]]["sub"])
        }
    )
    return by_id[owing[int(rng.integers(0, len(owing)))]] if owing else cps[0]


def _possible_pattern(pattern: str, cp: dict, mine: list[dict], credits: list[dict]) -> str:
    """`pattern`, or the nearest one the counterparty's open invoices allow."""
    if pattern == "subscription":
        if not cp["sub"]:
            pattern = "no_ref"
    elif cp["sub"] and pattern not in ("none", "third_party"):
        pattern = "subscription"
    if pattern != "none" and not mine:
        pattern = "none"
    if pattern in ("multi", "multi_credit") and len(mine) < 2:
        pattern = "exact"
    if pattern == "multi_credit" and not credits:
        pattern = "multi"
    return pattern


_Payment = tuple[float, str, str, str, list[tuple[dict, float]]]  # amount, title, name, iban, paid


def _payment(
    pattern: str,
    cp: dict,
    mine: list[dict],
    credits: list[dict],
    payers: dict[str, tuple[str, str]],
    rng: np.random.Generator,
) -> _Payment:
    """The transfer of one pattern: amount, title, payer name and account, and what it pays."""
    name, iban = str(cp["name"]), str(cp["iban"])
    paid: list[tuple[dict, float]] = []
    title = ""
    if pattern == "none":
        amount = float(rng.integers(20, 3000)) + 0.99
        title = str(rng.choice(["SALARY", "REFUND", "BANK CHARGES", "CARD SETTLEMENT"]))
        name, iban = "SOMEBODY ELSE", _iban(rng)
    elif pattern in ("multi", "multi_credit"):
        k = min(len(mine), int(rng.integers(2, 4)))
        chosen = mine[:k] + (credits[:1] if pattern == "multi_credit" else [])
        paid = [(v, v["open"]) for v in chosen]
        amount = sum(v["open"] for v in chosen)
        title = "INVOICES " + " ".join(v["invoice_number"] for v in chosen)
    else:
        v = mine[-1] if pattern == "subscription" and cp["newest_first"] else mine[0]
        amount, title, name, iban = _single_payment(pattern, v, cp, payers, rng)
        # A fee or discount closes the invoice: the label books the whole open amount.
        paid = [(v, v["open"] if pattern in ("fee", "discount") else amount)]
    return amount, title, name, iban, paid


def _single_payment(
    pattern: str,
    v: dict,
    cp: dict,
    payers: dict[str, tuple[str, str]],
    rng: np.random.Generator,
) -> tuple[float, str, str, str]:
    """`cp` paying its invoice `v` with the pattern's noise: amount, title, payer name, account."""
    name, iban = str(cp["name"]), str(cp["iban"])
    amount = v["open"]
    number = v["invoice_number"]
    digits = number.split("-")
    title = f"PAYMENT {number}"
    if pattern == "typo":
        pos = int(rng.integers(4, len(number)))
        repl = str((int(number[pos]) + 1) % 10) if number[pos].isdigit() else "X"
        title = f"PAYMENT {number[:pos]}{repl}{number[pos + 1 :]}"
    elif pattern == "separators":
        title = "PAYMENT " + "/".join(digits)
    elif pattern == "zeros":
        title = f"PAYMENT {digits[1]}/{int(digits[2])}"
    elif pattern == "seq_only":
        title = f"PAYMENT NR {int(digits[2])}"
    elif pattern in ("no_ref", "subscription"):
        title = "THANK YOU"
    elif pattern == "partial":
        amount = round(v["open"] / 2, 2)
    elif pattern == "fee":
        amount = round(v["open"] - float(rng.choice([2.5, 5.0, 7.5])), 2)
    elif pattern == "discount":
        amount = round(v["open"] * 0.98, 2)
    elif pattern == "third_party":
        name, iban = payers.get(cp["id"], ("PARENT HOLDING", _iban(rng)))
        title = f"ON BEHALF {number}" if rng.random() < 0.5 else "REMITTANCE"
    return amount, title, name, iban
