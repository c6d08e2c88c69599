"""The truth labels a transfer can carry (`PATTERNS`), and what each one means."""

from __future__ import annotations

# Every label a transfer can carry in `SyntheticData.truth_notes` (one row per label).
PATTERNS: dict[str, str] = {
    # what the transfer pays: exactly one of these four
    "single": "pays one invoice in full (less a fee or discount, if any)",
    "collective": "pays two or more invoices in one transfer (credit notes included)",
    "partial": "pays part of one invoice: an instalment",
    "no_invoice": "pays no invoice; it has no match rows",
    # how the title refers to the invoices: exactly one for transfers that pay invoices
    "ref_exact": "the invoice number(s) as printed, maybe among other words",
    "ref_reformatted": "separators changed or removed, lowercase, leading zeros or prefix dropped",
    "ref_typo": "a reference with a swapped, dropped, doubled or replaced character",
    "ref_sequence_only": "only the sequence number of the invoice",
    "ref_generic": "a title without any invoice reference",
    "ref_empty": "an empty, null or placeholder title",
    "ref_stale": "a standing order whose title names another (older) invoice",
    # further traits, any number of them
    "title_truncated": "the 140-character title limit cut off a reference",
    "own_document": "a collective payment titled with the payer's own document number only",
    "credit_note": "a credit note is netted into the payment",
    "third_party_parent": "a parent company pays on behalf of the counterparty",
    "third_party_factoring": "a factoring company pays on behalf of the counterparty",
    "bank_fee": "a bank fee was taken off the amount",
    "early_discount": "an early-payment discount was taken off",
    "subscription": "pays a subscription invoice (identical monthly amounts)",
    "foreign_currency": "the currency is not PLN",
    "name_variant": "the statement name differs from the invoice's name beyond letter case",
    "name_missing": "no counterparty name on the statement",
    "iban_unknown": "paid from or to an account missing from the invoice's master data",
    # kinds of transfers that pay no invoice
    "salary": "salary paid to an employee",
    "tax": "tax or social-security payment",
    "bank_charge": "a bank's own fee or commission",
    "refund": "refund of an overpayment or a complaint",
    "unknown_incoming": "incoming money from somebody unknown to the finance system",
    "internal": "transfer between the company's own accounts",
    "gateway_payout": "payout of a card / online payment gateway",
    "interest": "interest credited by the bank",
}

# Patterns only the habit randomizer's worlds produce (SynthConfig.habits): the profiles hold
# these habits fixed.
HABIT_PATTERNS = frozenset({"own_document"})
