"""Profiles: population parameters of the "default" and "messy" worlds, the title styles
their habits are drawn over, seasonality, and how habits drift after `shift_from`.
"""

from __future__ import annotations

from dataclasses import dataclass

PROFILES = ("default", "messy")

STYLES = ("exact", "reformatted", "typo", "sequence_only", "generic", "empty")
REF_STYLES = 4  # the first four styles put a reference in the title


@dataclass(frozen=True)
class _Profile:
    n_regular: int  # regular customers at scale 1
    n_subscription: int
    n_suppliers: int
    n_employees: int
    n_parents: int
    rate_median: float  # invoices per month of a regular customer
    rate_sigma: float
    style_mean: tuple[float, ...]  # customers' title habits, over STYLES
    style_concentration: float  # lower: customers differ more from each other
    ap_style_mean: tuple[float, ...]  # our accounts-payable clerks' habits
    payer_style_mean: tuple[float, ...]  # parent companies' habits
    p_batch: float  # customers who pay their invoices in batches
    p_partial_customer: float  # customers who pay some invoices in instalments
    p_credit: float  # invoices followed by a credit note that is netted into the payment
    p_factoring: float
    p_parent: float
    p_foreign: float
    p_fee_foreign: float  # foreign customers whose bank takes a fee off
    p_fee_domestic: float
    p_discount_terms: float  # customers offered an early-payment discount
    p_never: float  # invoices never paid (disputes)
    p_insolvent: float  # customers who stop paying at some date
    p_tax_missing: float
    p_iban_missing: float
    p_other_account: float
    p_name_other: float  # a transfer shows another rendering of the payer's name
    p_name_null: float
    p_standing: float  # subscription customers paying by standing order
    p_late_subscription: float
    subscription_prices: tuple[float, ...]  # gross PLN


_DEFAULT = _Profile(
    n_regular=640,
    n_subscription=200,
    n_suppliers=150,
    n_employees=28,
    n_parents=8,
    rate_median=1.55,
    rate_sigma=0.85,
    style_mean=(0.64, 0.11, 0.05, 0.04, 0.10, 0.06),
    style_concentration=4.0,
    ap_style_mean=(0.84, 0.05, 0.03, 0.02, 0.04, 0.02),
    payer_style_mean=(0.70, 0.10, 0.03, 0.02, 0.10, 0.05),
    p_batch=0.10,
    p_partial_customer=0.06,
    p_credit=0.015,
    p_factoring=0.025,
    p_parent=0.03,
    p_foreign=0.08,
    p_fee_foreign=0.35,
    p_fee_domestic=0.02,
    p_discount_terms=0.06,
    p_never=0.012,
    p_insolvent=0.02,
    p_tax_missing=0.05,
    p_iban_missing=0.10,
    p_other_account=0.06,
    p_name_other=0.06,
    p_name_null=0.015,
    p_standing=0.35,
    p_late_subscription=0.08,
    subscription_prices=(49.20, 99.00, 123.00, 199.00, 246.00, 369.00, 615.00, 1230.00, 2460.00),
)

_MESSY = _Profile(
    n_regular=460,
    n_subscription=560,
    n_suppliers=120,
    n_employees=28,
    n_parents=10,
    rate_median=1.5,
    rate_sigma=0.9,
    style_mean=(0.20, 0.09, 0.06, 0.06, 0.33, 0.26),
    style_concentration=2.0,
    ap_style_mean=(0.70, 0.08, 0.05, 0.03, 0.09, 0.05),
    payer_style_mean=(0.40, 0.10, 0.05, 0.05, 0.25, 0.15),
    p_batch=0.20,
    p_partial_customer=0.14,
    p_credit=0.05,
    p_factoring=0.12,
    p_parent=0.06,
    p_foreign=0.12,
    p_fee_foreign=0.70,
    p_fee_domestic=0.04,
    p_discount_terms=0.12,
    p_never=0.025,
    p_insolvent=0.04,
    p_tax_missing=0.15,
    p_iban_missing=0.20,
    p_other_account=0.12,
    p_name_other=0.18,
    p_name_null=0.05,
    p_standing=0.55,
    p_late_subscription=0.18,
    subscription_prices=(99.00, 123.00, 199.00, 369.00),
)

PROFILE_PARAMETERS = {"default": _DEFAULT, "messy": _MESSY}

# After `shift_from`: this share of the reference styles' mass moves to generic/empty titles,
# this many customers without a third-party payer start paying through a factor, and amounts
# of new invoices grow (prices and order sizes).
SHIFT_REF_LOSS = 0.6
SHIFT_NEW_FACTORING = 0.15
SHIFT_AMOUNT = (1.25, 1.6)
SHIFT_SUBSCRIPTION_PRICE = 1.2

SEASON = (0.97, 0.98, 1.03, 1.0, 1.0, 0.98, 0.95, 0.92, 1.02, 1.04, 1.03, 1.06)
