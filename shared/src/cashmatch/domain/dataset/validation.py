"""Row checks for the contract tables: bad rows are set aside with their key and reason."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cashmatch.domain.contract import (
    INVOICE_DIRECTION_FOR,
    INVOICES,
    MATCHES,
    MAX_AMOUNT,
    TRANSFERS,
    Table,
)

QUARANTINE_COLUMNS = ["table", "key", "reason"]
_CURRENCY = r"^[A-Z]{3}$"


@dataclass
class ValidatedMonth:
    """A month's rows split into usable ones and a quarantine report."""

    transfers: pd.DataFrame
    invoices: pd.DataFrame
    matches: pd.DataFrame
    quarantine: pd.DataFrame  # table, key, reason


def _required_nulls(frame: pd.DataFrame, table: Table) -> pd.Series:
    reasons = pd.Series("", index=frame.index, dtype=object)
    for column in table.columns:
        if not column.nullable:
            missing = frame[column.name].isna()
            reasons[missing] += f"{column.name} is null; "
    return reasons


def _not_an_amount(values: pd.Series) -> pd.Series:
    """Present, but not a finite number within ±MAX_AMOUNT (a missing one is reported as null)."""
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    return values.notna() & ~(numbers.abs() <= MAX_AMOUNT)


_AMOUNT_REASON = f"amount not a finite number within ±{MAX_AMOUNT:g}; "


def _check_transfers(frame: pd.DataFrame) -> pd.Series:
    reasons = _required_nulls(frame, TRANSFERS)
    reasons[~frame["direction"].isin(list(INVOICE_DIRECTION_FOR))] += (
        "direction not incoming/outgoing; "
    )
    reasons[~(frame["amount"] > 0)] += "amount must be > 0; "
    reasons[_not_an_amount(frame["amount"])] += _AMOUNT_REASON
    reasons[~frame["currency"].astype(str).str.match(_CURRENCY)] += "currency not ISO 4217; "
    reasons[frame["transfer_id"].duplicated(keep=False)] += "duplicate transfer_id; "
    return reasons


def _check_invoices(frame: pd.DataFrame) -> pd.Series:
    reasons = _required_nulls(frame, INVOICES)
    valid_directions = list(INVOICE_DIRECTION_FOR.values())
    reasons[~frame["direction"].isin(valid_directions)] += "direction not receivable/payable; "
    reasons[~frame["currency"].astype(str).str.match(_CURRENCY)] += "currency not ISO 4217; "
    reasons[frame["due_date"] < frame["issue_date"]] += "due_date before issue_date; "
    reasons[_not_an_amount(frame["amount"])] += _AMOUNT_REASON
    if "open_amount" in frame:
        reasons[_not_an_amount(frame["open_amount"])] += "open_" + _AMOUNT_REASON
    reasons[frame["invoice_id"].duplicated(keep=False)] += "duplicate invoice_id; "
    return reasons


MISSING_KEY = "<missing>"  # what a report says for a row whose key itself is null


def _report(table: str, keys: pd.Series, reasons: pd.Series) -> pd.DataFrame:
    bad = reasons != ""
    named = keys[bad].astype(object).where(keys[bad].notna(), MISSING_KEY).astype(str)
    return pd.DataFrame({"table": table, "key": named, "reason": reasons[bad].str.rstrip("; ")})


def validate_month(
    transfers: pd.DataFrame, invoices: pd.DataFrame, matches: pd.DataFrame
) -> ValidatedMonth:
    """Check every row; a transfer with any bad row of its own or of its labels is set aside whole.

    Setting the whole transfer aside keeps the labels consistent: a transfer is never trained on
    with only some of the invoices it paid.
    """
    transfer_reasons = _check_transfers(transfers)
    invoice_reasons = _check_invoices(invoices)
    reports = [
        _report("transfers", transfers["transfer_id"], transfer_reasons),
        _report("invoices", invoices["invoice_id"], invoice_reasons),
    ]
    good_invoices = invoices[invoice_reasons == ""]

    labelled = matches.merge(
        transfers[["transfer_id", "direction", "currency", "amount"]].rename(
            columns={"direction": "t_direction", "currency": "t_currency", "amount": "t_amount"}
        ),
        on="transfer_id",
        how="left",
    ).merge(
        invoices.drop_duplicates("invoice_id")[["invoice_id", "direction", "currency"]].rename(
            columns={"direction": "i_direction", "currency": "i_currency"}
        ),
        on="invoice_id",
        how="left",
    )
    match_reasons = _required_nulls(labelled, MATCHES)
    match_reasons[_not_an_amount(labelled["amount"])] += _AMOUNT_REASON
    match_reasons[labelled["t_direction"].isna()] += "unknown transfer; "
    match_reasons[labelled["i_direction"].isna()] += "invoice unknown or not open; "
    known = labelled["i_direction"].notna() & labelled["t_direction"].notna()
    wrong_direction = known & (
        labelled["t_direction"].map(INVOICE_DIRECTION_FOR) != labelled["i_direction"]
    )
    match_reasons[wrong_direction] += "transfer and invoice directions do not pair; "
    match_reasons[known & (labelled["t_currency"] != labelled["i_currency"])] += (
        "currency differs; "
    )
    match_reasons[labelled.duplicated(["transfer_id", "invoice_id"], keep=False)] += (
        "duplicate label; "
    )
    applied = labelled.groupby("transfer_id")["amount"].transform("sum")
    over = applied > labelled["t_amount"] + 0.01
    match_reasons[over] += "labels apply more than the transfer amount; "
    pair_keys = labelled["transfer_id"].astype(str) + "/" + labelled["invoice_id"].astype(str)
    reports.append(_report("matches", pair_keys, match_reasons))

    bad_transfers = set(transfers.loc[transfer_reasons != "", "transfer_id"])
    bad_transfers |= set(labelled.loc[match_reasons != "", "transfer_id"])
    keep = ~transfers["transfer_id"].isin(bad_transfers)
    quarantine = pd.concat(reports, ignore_index=True)
    # Transfers dropped only because of their labels are named too, so nothing vanishes silently.
    collateral = sorted(
        (bad_transfers & set(transfers["transfer_id"]))
        - set(transfers.loc[transfer_reasons != "", "transfer_id"])
    )
    if collateral:
        extra = pd.DataFrame(
            {
                "table": "transfers",
                "key": collateral,
                "reason": "set aside: a label of it is invalid",
            }
        )
        quarantine = pd.concat([quarantine, extra], ignore_index=True)
    return ValidatedMonth(
        transfers=transfers[keep].reset_index(drop=True),
        invoices=good_invoices.reset_index(drop=True),
        matches=matches[~matches["transfer_id"].isin(bad_transfers)].reset_index(drop=True),
        quarantine=quarantine[QUARANTINE_COLUMNS].reset_index(drop=True),
    )
