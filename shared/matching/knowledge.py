"""What earlier labels teach: which counterparty a payer account or payer name pays for.

A parent company or a factoring house pays from its own account under its own name, so nothing on
the statement names the invoiced customer. Once a person has matched such a payment, the pair
(payer account -> counterparty) is known and later payments become matchable. Knowledge is kept as
raw observations (one per labelled transfer and counterparty) so that adding a month that was
already seen counts nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from shared.matching.batches import MonthBatch
from shared.matching.text import normalize_iban, normalize_name

OBS_COLUMNS = ["transfer_id", "iban_key", "name_key", "counterparty_id", "month"]


def empty_observations() -> pd.DataFrame:
    """An empty observation frame."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in OBS_COLUMNS})


def observations(batch: MonthBatch) -> pd.DataFrame:
    """Payer observations of one labelled month: who paid for which counterparty."""
    if not batch.labelled:
        return empty_observations()
    lab = batch.matches[["transfer_id", "invoice_id"]]
    inv = batch.invoices[["invoice_id", "counterparty_id"]]
    tr = batch.transfers[["transfer_id", "counterparty_iban", "counterparty_name"]]
    df = lab.merge(inv, on="invoice_id").merge(tr, on="transfer_id")
    if df.empty:
        return empty_observations()
    out = pd.DataFrame(
        {
            "transfer_id": df["transfer_id"].astype(object).to_numpy(),
            "iban_key": [normalize_iban(v) for v in df["counterparty_iban"]],
            "name_key": [normalize_name(v) for v in df["counterparty_name"]],
            "counterparty_id": df["counterparty_id"].astype(str).to_numpy(),
            "month": batch.month,
        }
    )
    return out.drop_duplicates(["transfer_id", "counterparty_id"]).reset_index(drop=True)


def combine(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Union of observation frames without double counting a transfer."""
    frames = [f for f in frames if f is not None and len(f)]
    if not frames:
        return empty_observations()
    df = pd.concat(frames, ignore_index=True)
    return df.drop_duplicates(["transfer_id", "counterparty_id"]).reset_index(drop=True)


def payer_map(obs: pd.DataFrame) -> pd.DataFrame:
    """Counts per (payer key, counterparty): key is "I:<iban>" or "N:<name>", with key totals."""
    cols = ["payer_key", "counterparty_id", "n", "n_key"]
    if obs is None or obs.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    parts = []
    for prefix, col in (("I:", "iban_key"), ("N:", "name_key")):
        sub = obs[obs[col].astype(str).str.len() > 0]
        parts.append(
            pd.DataFrame(
                {
                    "payer_key": prefix + sub[col].astype(str),
                    "counterparty_id": sub["counterparty_id"].astype(str),
                    "transfer_id": sub["transfer_id"],
                }
            )
        )
    df = pd.concat(parts, ignore_index=True)
    counts = df.groupby(["payer_key", "counterparty_id"]).size().rename("n").reset_index()
    totals = df.groupby("payer_key")["transfer_id"].nunique().rename("n_key")
    counts = counts.merge(totals, left_on="payer_key", right_index=True)
    counts["n"] = counts["n"].astype("float64")
    counts["n_key"] = counts["n_key"].astype("float64")
    return counts[cols]


HABIT_COLUMNS = ["transfer_id", "counterparty_id", "rank_old", "rank_new", "month"]


def empty_habits() -> pd.DataFrame:
    """An empty habit observation frame."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in HABIT_COLUMNS})


def habit_observations(batch: MonthBatch) -> pd.DataFrame:
    """Which of several equal open invoices a counterparty paid: rank from oldest and newest.

    One row per labelled one-invoice payment whose counterparty had two or more open invoices of
    that amount (subscriptions, instalment plans); most pay the oldest, some the newest.
    """
    if not batch.labelled:
        return empty_habits()
    lab = batch.matches[["transfer_id", "invoice_id"]].astype(str)
    lab = lab[lab.groupby("transfer_id")["invoice_id"].transform("size") == 1]
    inv = batch.invoices[["invoice_id", "counterparty_id", "open_amount", "issue_date"]].copy()
    inv["invoice_id"] = inv["invoice_id"].astype(str)
    inv["counterparty_id"] = inv["counterparty_id"].astype(str)
    inv["cents"] = (inv["open_amount"] * 100).round().astype("int64")
    tr = batch.transfers[["transfer_id", "booking_date"]].copy()
    tr["transfer_id"] = tr["transfer_id"].astype(str)
    paid = lab.merge(inv, on="invoice_id").merge(tr, on="transfer_id")
    if paid.empty:
        return empty_habits()
    peers = paid[["transfer_id", "counterparty_id", "cents", "issue_date", "booking_date"]].merge(
        inv[["counterparty_id", "cents", "issue_date"]].rename(columns={"issue_date": "peer"}),
        on=["counterparty_id", "cents"],
    )
    peers = peers[pd.to_datetime(peers["peer"]) <= pd.to_datetime(peers["booking_date"])]
    peers["older"] = peers["peer"] < peers["issue_date"]
    peers["newer"] = peers["peer"] > peers["issue_date"]
    g = peers.groupby(["transfer_id", "counterparty_id"]).agg(
        rank_old=("older", "sum"), rank_new=("newer", "sum"), size=("older", "size")
    )
    g = g[g["size"] >= 2].reset_index()
    if g.empty:
        return empty_habits()
    g["month"] = batch.month
    return g[HABIT_COLUMNS].astype({"rank_old": "int64", "rank_new": "int64"})


def combine_habits(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Union of habit observation frames without double counting a transfer."""
    frames = [f for f in frames if f is not None and len(f)]
    if not frames:
        return empty_habits()
    df = pd.concat(frames, ignore_index=True)
    return df.drop_duplicates(["transfer_id", "counterparty_id"]).reset_index(drop=True)


def habit_table(habits: pd.DataFrame) -> pd.DataFrame:
    """Per counterparty: observations, share paying the oldest and share paying the newest."""
    cols = ["counterparty_id", "habit_n", "oldest_share", "newest_share"]
    if habits is None or habits.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    h = habits.assign(
        o=(habits["rank_old"].astype("int64") == 0).astype(float),
        w=(habits["rank_new"].astype("int64") == 0).astype(float),
    )
    t = h.groupby(h["counterparty_id"].astype(str)).agg(
        habit_n=("o", "size"), oldest_share=("o", "mean"), newest_share=("w", "mean")
    )
    t["habit_n"] = t["habit_n"].astype("float64")
    return t.reset_index()[cols]
