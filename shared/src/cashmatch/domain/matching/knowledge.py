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

from cashmatch.domain.matching.batches import MonthBatch
from cashmatch.domain.matching.text import normalize_iban, normalize_name, tokens

OBS_COLUMNS = ["transfer_id", "iban_key", "name_key", "title_keys", "counterparty_id", "month"]
# A learned title token must have been seen with this many transfers and point mostly to one
# counterparty; otherwise it is an invoice number, a date or a word.
MIN_TITLE_KEY_TRANSFERS = 2
MIN_TITLE_KEY_SHARE = 0.6


def title_key_tokens(title: object) -> list[str]:
    """Tokens of a title that can be a stable customer or contract number (with a digit)."""
    return sorted({t for t in tokens(title) if len(t) >= 3 and any(c.isdigit() for c in t)})


def empty_observations() -> pd.DataFrame:
    """An empty observation frame."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in OBS_COLUMNS})


def observations(batch: MonthBatch) -> pd.DataFrame:
    """Payer observations of one labelled month: who paid for which counterparty."""
    if not batch.labelled:
        return empty_observations()
    lab = batch.matches[["transfer_id", "invoice_id"]]
    inv = batch.invoices[["invoice_id", "counterparty_id"]]
    tr = batch.transfers[["transfer_id", "counterparty_iban", "counterparty_name", "title"]]
    df = lab.merge(inv, on="invoice_id").merge(tr, on="transfer_id")
    if df.empty:
        return empty_observations()
    out = pd.DataFrame(
        {
            "transfer_id": df["transfer_id"].astype(object).to_numpy(),
            "iban_key": [normalize_iban(v) for v in df["counterparty_iban"]],
            "name_key": [normalize_name(v) for v in df["counterparty_name"]],
            "title_keys": [" ".join(title_key_tokens(v)) for v in df["title"]],
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
    """Counts per (payer key, counterparty) with key totals.

    Keys: "I:<iban>" and "N:<name>" of the payer, and "T:<token>" for a title token that keeps
    pointing to one counterparty (a customer number, a factoring contract number).
    """
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
    titled = obs[obs["title_keys"].astype(str).str.len() > 0]
    tk = titled.assign(tok=titled["title_keys"].astype(str).str.split(" ")).explode("tok")
    parts.append(
        pd.DataFrame(
            {
                "payer_key": "T:" + tk["tok"].astype(str),
                "counterparty_id": tk["counterparty_id"].astype(str),
                "transfer_id": tk["transfer_id"],
            }
        )
    )
    df = pd.concat(parts, ignore_index=True).drop_duplicates()
    counts = df.groupby(["payer_key", "counterparty_id"]).size().rename("n").reset_index()
    totals = df.groupby("payer_key")["transfer_id"].nunique().rename("n_key")
    counts = counts.merge(totals, left_on="payer_key", right_index=True)
    is_title = counts["payer_key"].str.startswith("T:")
    useful = (counts["n"] >= MIN_TITLE_KEY_TRANSFERS) & (
        counts["n"] / counts["n_key"] >= MIN_TITLE_KEY_SHARE
    )
    counts = counts[~is_title | useful]
    counts["n"] = counts["n"].astype("float64")
    counts["n_key"] = counts["n_key"].astype("float64")
    return counts[cols]


HABIT_COLUMNS = ["transfer_id", "counterparty_id", "rank_old", "rank_new", "month"]


def empty_habits() -> pd.DataFrame:
    """An empty habit observation frame."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in HABIT_COLUMNS})


def settle_days(
    transfers: pd.DataFrame, invoices: pd.DataFrame, matches: pd.DataFrame
) -> pd.Series:
    """Per invoice id, the booking day (days since epoch) on which labelled transfers of this
    month closed it; invoices not closed this month are absent."""
    lab = matches[["transfer_id", "invoice_id", "amount"]].copy()
    lab["transfer_id"] = lab["transfer_id"].astype(str)
    lab["invoice_id"] = lab["invoice_id"].astype(str)
    day = pd.Series(
        pd.to_datetime(transfers["booking_date"]).to_numpy("datetime64[D]").astype("int64"),
        index=transfers["transfer_id"].astype(str).to_numpy(),
    )
    lab["day"] = lab["transfer_id"].map(day)
    lab = lab.dropna(subset=["day"]).sort_values(["invoice_id", "day"])
    lab["paid"] = lab.groupby("invoice_id")["amount"].cumsum()
    opens = pd.Series(
        invoices["open_amount"].to_numpy(), index=invoices["invoice_id"].astype(str).to_numpy()
    )
    lab["open"] = lab["invoice_id"].map(opens)
    closed = lab[(lab["open"].abs() - lab["paid"].abs()) <= 0.005]
    return closed.groupby("invoice_id")["day"].min()


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
    inv["settled"] = (
        inv["invoice_id"]
        .map(settle_days(batch.transfers, batch.invoices, batch.matches))
        .astype("float64")
    )
    inv["counterparty_id"] = inv["counterparty_id"].astype(str)
    inv["cents"] = (inv["open_amount"] * 100).round().astype("int64")
    tr = batch.transfers[["transfer_id", "booking_date"]].copy()
    tr["transfer_id"] = tr["transfer_id"].astype(str)
    paid = lab.merge(inv, on="invoice_id").merge(tr, on="transfer_id")
    if paid.empty:
        return empty_habits()
    peers = paid[["transfer_id", "counterparty_id", "cents", "issue_date", "booking_date"]].merge(
        inv[["counterparty_id", "cents", "issue_date", "settled"]].rename(
            columns={"issue_date": "peer"}
        ),
        on=["counterparty_id", "cents"],
    )
    booked = pd.to_datetime(peers["booking_date"])
    # A peer closed by an earlier payment this month was no longer a choice.
    day = booked.to_numpy("datetime64[D]").astype("int64")
    peers = peers[(pd.to_datetime(peers["peer"]) <= booked) & ~(peers["settled"] < day)]
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
