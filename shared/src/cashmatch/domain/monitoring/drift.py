"""Drift of a newly closed month against the training reference: every signal compared, in the
report's order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from cashmatch.domain.matching.batches import MonthBatch
from cashmatch.domain.monitoring.comparisons import histogram, numeric_drift, rate_drift
from cashmatch.domain.monitoring.report import (
    ColumnDrift,
    DriftConfig,
    DriftReport,
    Histogram,
    PerformanceDrift,
)
from cashmatch.domain.monitoring.signals import (
    has_reference,
    known_payers,
    pair_signals,
    payment_delays,
    pays_no_invoice,
    pays_several,
)

_PAIR_NUMERIC = (
    ("name_similarity", "payer name vs invoiced counterparty, per labelled pair"),
    ("amount_share", "share of the invoice's open amount paid, per labelled pair"),
)
_PAIR_RATES = (
    ("iban_match", "payer account equals the invoice's account, per labelled pair"),
    ("number_in_title", "the invoice number's digits appear in the title, per pair"),
)


def compute_drift(
    reference: Sequence[MonthBatch],
    current: MonthBatch,
    config: DriftConfig | None = None,
    *,
    performance: PerformanceDrift | None = None,
) -> DriftReport:
    """Compare `current` with the `reference` months (oldest first) on every signal.

    Each signal is one "column": a numeric distribution (transfer amounts, payment delays) or a
    rate (titles carrying an invoice reference, transfers paying no invoice, payers already
    known, transfers paying several invoices). A column drifts only when the change is both
    *significant* (a test's p-value below `p_value`) and *material* (PSI or an absolute rate
    change above its threshold): the p-value alone flags trivial shifts once months hold tens of
    thousands of transfers, and the effect size alone flags noise in small months.

    Numeric columns: PSI over deciles of the reference, plus the two-sample Kolmogorov–Smirnov
    test ("PSI + KS"). Rate columns: the pooled two-proportion z-test ("z-test").
    """
    cfg = config or DriftConfig()
    ref = list(reference)
    if cfg.max_reference_months is not None:
        ref = ref[-cfg.max_reference_months :]
    amount, amount_plot = _amount_drift(ref, current, cfg)
    delay, delay_plot = _delay_drift(ref, current, cfg)
    rates = _rate_drifts(ref, current, cfg)
    pairs, pair_plots = _pair_drift(ref, current, cfg)
    columns = [amount, delay, *rates, *pairs]
    if len(ref) >= 2:
        columns.append(_known_payer_drift(ref, current, cfg))
    columns = [replace(c, alarming=False) if c.column in cfg.watch_only else c for c in columns]
    return DriftReport(
        month=current.month,
        reference_months=[b.month for b in ref],
        columns=columns,
        histograms=[amount_plot, delay_plot, *pair_plots],
        performance=performance,
        config=cfg,
    )


def _concat(parts: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(list(parts)) if parts else np.zeros(0)


def _amount_drift(
    ref: list[MonthBatch], current: MonthBatch, cfg: DriftConfig
) -> tuple[ColumnDrift, Histogram]:
    ref_amount = _concat([b.transfers["amount"].to_numpy(np.float64) for b in ref])
    cur_amount = current.transfers["amount"].to_numpy(np.float64)
    column = numeric_drift("amount", ref_amount, cur_amount, cfg, "transfer amount")
    # Amounts span cents to millions: bin the plot on a log scale (PSI and KS need not: both
    # depend only on the order of values, which a logarithm keeps).
    plot = histogram(
        "amount",
        "transfer amount (log scale)",
        np.log10(ref_amount),
        np.log10(cur_amount),
        log10=True,
    )
    return column, plot


def _delay_drift(
    ref: list[MonthBatch], current: MonthBatch, cfg: DriftConfig
) -> tuple[ColumnDrift, Histogram]:
    ref_delay = _concat([payment_delays(b) for b in ref])
    cur_delay = payment_delays(current)
    column = numeric_drift(
        "payment_delay_days",
        ref_delay,
        cur_delay,
        cfg,
        "days from due date to booking, per labelled (transfer, invoice) pair",
    )
    plot = histogram("payment_delay_days", "days after due date", ref_delay, cur_delay)
    return column, plot


def _rate_drifts(ref: list[MonthBatch], current: MonthBatch, cfg: DriftConfig) -> list[ColumnDrift]:
    return [
        rate_drift(
            "reference_rate",
            _concat([has_reference(b) for b in ref]),
            has_reference(current),
            cfg,
            "titles naming an invoice open that month",
        ),
        rate_drift(
            "no_invoice_rate",
            _concat([pays_no_invoice(b) for b in ref]),
            pays_no_invoice(current),
            cfg,
            "transfers paying no invoice",
        ),
        rate_drift(
            "multi_invoice_rate",
            _concat([pays_several(b) for b in ref]),
            pays_several(current),
            cfg,
            "transfers paying two or more invoices, among those paying any",
        ),
    ]


def _pair_drift(
    ref: list[MonthBatch], current: MonthBatch, cfg: DriftConfig
) -> tuple[list[ColumnDrift], list[Histogram]]:
    """The labelled pairs' signals; none unless both sides have labelled pairs."""
    ref_pairs = pd.concat([pair_signals(b) for b in ref], ignore_index=True)
    cur_pairs = pair_signals(current)
    columns: list[ColumnDrift] = []
    plots: list[Histogram] = []
    if not (len(ref_pairs) and len(cur_pairs)):
        return columns, plots
    for name, label in _PAIR_NUMERIC:
        ref_values = ref_pairs[name].to_numpy(np.float64)
        cur_values = cur_pairs[name].to_numpy(np.float64)
        columns.append(numeric_drift(f"pair_{name}", ref_values, cur_values, cfg, label))
        plots.append(histogram(f"pair_{name}", label, ref_values, cur_values))
    for name, label in _PAIR_RATES:
        ref_flags = ref_pairs[name].to_numpy(bool)
        cur_flags = cur_pairs[name].to_numpy(bool)
        columns.append(rate_drift(f"pair_{name}", ref_flags, cur_flags, cfg, label))
    return columns, plots


def _known_payer_drift(ref: list[MonthBatch], current: MonthBatch, cfg: DriftConfig) -> ColumnDrift:
    # The reference's own rate needs a history too: its last month against the ones before.
    # A rising rate is normal as history grows; only a drop (new payers) is drift.
    return rate_drift(
        "known_payer_rate",
        known_payers(ref[-1], ref[:-1]),
        known_payers(current, ref),
        cfg,
        "transfers from an account seen in earlier months",
        alternative="less",
    )
