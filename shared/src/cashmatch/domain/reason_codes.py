"""The reason codes a proposed invoice carries, with the phrase a sentence uses for each.

A module of its own, free of the matching package's imports, so the HTTP schema
(`match_api.ReasonCode`) can name them without loading the model code.
"""

from __future__ import annotations

# Every code, in the order a sentence lists them (strongest evidence first), with its phrase.
# The HTTP schema's enum and docs/DESIGN.md list the same codes (a unit test holds them equal).
REASONS: dict[str, str] = {
    "rf-reference": "the title carries the invoice's RF creditor reference",
    "reference:exact": "the title names the invoice number",
    "reference:reformatted": "the title names the invoice number, written differently",
    "reference:1-edit": "the title names the invoice number with one typo",
    "reference:2-edits": "the title names the invoice number with two typos",
    "reference:sequence-only": "the title has the invoice's sequence number",
    "tax-id": "the title carries the counterparty's tax id",
    "vat:consistent": "the split payment's VAT amount is the invoice's VAT",
    "amount:equal": "the amount equals the open amount",
    "amount:subset-sum": "the open amounts of the proposed invoices add up to the amount",
    "amount:period-balance": "the amount clears the counterparty's oldest open invoices",
    "amount:fee-or-discount": "the amount is short by a bank fee or a discount",
    "amount:partial": "the amount pays part of the invoice",
    "amount:overpaid": "the amount is more than the open amount",
    "credit-note:netted": "a credit note is netted in the payment",
    "payer:same-account": "paid from the account on the invoice",
    "payer:known-account": "this account paid the counterparty before",
    "payer:known-name": "a payer of this name paid the counterparty before",
    "payer:name": "the payer's name is the counterparty's",
    "payer:title-token": "a customer or contract number in the title paid it before",
    "invoice:oldest-equal": "the oldest of the counterparty's open invoices of this amount",
}
REASON_CODES = tuple(REASONS)
