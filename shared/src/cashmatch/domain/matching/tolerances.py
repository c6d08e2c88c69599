"""Fee and discount tolerances learned per counterparty and currency from labelled months.

The matcher accepts a set of invoices for a transfer when the transfer is short of their open
sum by at most a bank fee (`MatcherConfig.max_fee`) plus an early-payment discount share
(`max_discount`), one global pair for every payer. Some payers' banks take more, some always
take a 3% discount; their labelled exact matches say so. This module learns, per (counterparty,
currency), the largest short payment seen among transfers that closed their whole labelled set,
and widens the global tolerance to it (never narrows it). A short payment far beyond any fee or
discount (a part payment) is not evidence and is left out (`FEE_CEILING`, `DISCOUNT_CEILING`).

Status: learned and tested here; not yet used by candidates, assembly or settlement (they still
take the global pair), nor stored in the model file.
"""

from __future__ import annotations

import pandas as pd

from cashmatch.domain.matching.batches import MonthBatch

TOLERANCE_COLUMNS = ["transfer_id", "counterparty_id", "currency", "short", "share", "month"]
# Largest fee and discount share believed at all: beyond this a short payment is a part payment.
FEE_CEILING = 150.0
DISCOUNT_CEILING = 0.10
# Exact matches a counterparty needs before its own tolerance replaces the global one.
MIN_TOLERANCE_OBSERVATIONS = 2


def empty_tolerance_observations() -> pd.DataFrame:
    """An empty observation frame."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in TOLERANCE_COLUMNS})


def tolerance_observations(batch: MonthBatch) -> pd.DataFrame:
    """One row per labelled transfer paying invoices of one counterparty and currency whose open
    sum exceeds the amount by a fee or discount: how much short (`short`, currency units) and
    which share of the open sum (`share`)."""
    if not batch.labelled or batch.matches.empty:
        return empty_tolerance_observations()
    lab = batch.matches[["transfer_id", "invoice_id"]].astype(str)
    inv = batch.invoices[["invoice_id", "counterparty_id", "currency", "open_amount"]].copy()
    inv["invoice_id"] = inv["invoice_id"].astype(str)
    tr = batch.transfers[["transfer_id", "amount"]].copy()
    tr["transfer_id"] = tr["transfer_id"].astype(str)
    df = lab.merge(inv, on="invoice_id").merge(tr, on="transfer_id")
    g = df.groupby("transfer_id").agg(
        counterparty_id=("counterparty_id", "first"),
        n_cp=("counterparty_id", "nunique"),
        currency=("currency", "first"),
        n_cur=("currency", "nunique"),
        open_sum=("open_amount", "sum"),
        amount=("amount", "first"),
    )
    g = g[(g["n_cp"] == 1) & (g["n_cur"] == 1) & (g["open_sum"] > 0)]
    short = g["open_sum"] - g["amount"]
    share = short / g["open_sum"]
    keep = (short > 0.005) & ((short <= FEE_CEILING) | (share <= DISCOUNT_CEILING))
    g = g[keep]
    if g.empty:
        return empty_tolerance_observations()
    out = pd.DataFrame(
        {
            "transfer_id": g.index.to_numpy(dtype=object),
            "counterparty_id": g["counterparty_id"].astype(str).to_numpy(),
            "currency": g["currency"].astype(str).to_numpy(),
            "short": short[keep].round(2).to_numpy(),
            "share": share[keep].to_numpy(),
            "month": batch.month,
        }
    )
    return out


def tolerance_table(obs: pd.DataFrame, max_fee: float, max_discount: float) -> pd.DataFrame:
    """Per (counterparty, currency) with enough observations: its fee and discount tolerance.

    Only short payments the global pair does not explain widen it; both never narrow.
    Counterparties absent here keep the global pair.
    """
    cols = ["counterparty_id", "currency", "n", "max_fee", "max_discount"]
    if obs is None or obs.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    df = obs.drop_duplicates("transfer_id").copy()
    short, share = df["short"].astype(float), df["share"].astype(float)
    covered = (short <= max_fee + 0.005) | (share <= max_discount)
    # Beyond the global pair: a short payment up to the fee ceiling is taken for a bank fee
    # (banks take amounts, not shares), a larger one within the ceiling share for a discount.
    as_fee = ~covered & (short <= FEE_CEILING)
    as_discount = ~covered & ~as_fee & (share <= DISCOUNT_CEILING)
    df["fee"] = short.where(as_fee, 0.0)
    df["disc"] = share.where(as_discount, 0.0)
    t = df.groupby(["counterparty_id", "currency"]).agg(
        n=("transfer_id", "size"), fee=("fee", "max"), disc=("disc", "max")
    )
    t = t[t["n"] >= MIN_TOLERANCE_OBSERVATIONS].reset_index()
    t["max_fee"] = t["fee"].clip(lower=max_fee).astype("float64")
    t["max_discount"] = t["disc"].clip(lower=max_discount).astype("float64")
    t["n"] = t["n"].astype("float64")
    return t[cols].reset_index(drop=True)
