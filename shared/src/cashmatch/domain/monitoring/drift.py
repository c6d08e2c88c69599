"""Drift of a newly closed month against the training reference, and the champion's ageing.

Each signal is one "column": a numeric distribution (transfer amounts, payment delays) or a rate
(titles carrying an invoice reference, transfers paying no invoice, payers already known, transfers
paying several invoices). A column drifts only when the change is both *significant* (a test's
p-value below `p_value`) and *material* (PSI or an absolute rate change above its threshold):
the p-value alone flags trivial shifts once months hold tens of thousands of transfers, and the
effect size alone flags noise in small months.

Numeric columns: PSI over deciles of the reference, plus the two-sample Kolmogorov–Smirnov test
("PSI + KS"). Rate columns: the pooled two-proportion z-test ("z-test").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from cashmatch.domain.matching.batches import MonthBatch
from cashmatch.domain.matching.text import invoice_keys, normalize_iban, title_keys

PRIMARY = "auto_rate@99"
_EPS = 1e-4  # PSI smoothing: an empty bin would make the log ratio infinite


class DriftConfig(BaseModel):
    """Thresholds of the drift checks; defaults suit months of a few hundred transfers and up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    p_value: float = Field(0.01, gt=0.0, lt=1.0, description="significance of every test")
    psi_threshold: float = Field(0.1, ge=0.0, description="numeric columns: material PSI")
    min_rate_change: float = Field(
        0.05, ge=0.0, le=1.0, description="rate columns: material absolute change"
    )
    max_auto_rate_drop: float = Field(
        0.05, ge=0.0, le=1.0, description="flag the champion when auto_rate@99 drops more"
    )
    bins: int = Field(10, ge=2, le=100, description="PSI bins (quantiles of the reference)")
    max_reference_months: int | None = Field(
        12, ge=1, description="compare with at most this many months before the new one"
    )
    # Payment delays depend on how far back the history reaches (a young warehouse holds only
    # the quick payments of its first invoices), so they are shown but do not raise an alarm.
    watch_only: tuple[str, ...] = Field(
        ("payment_delay_days",), description="columns reported and plotted but never alarming"
    )


@dataclass(frozen=True)
class ColumnDrift:
    """The verdict on one signal."""

    column: str
    kind: Literal["numeric", "rate"]
    test: str
    statistic: float  # PSI (numeric) or current minus reference rate (rate)
    p_value: float
    threshold: float  # the material size the statistic is compared with
    drifted: bool
    reference: float  # median (numeric) or rate
    current: float
    n_reference: int
    n_current: int
    description: str
    alarming: bool = True  # False for watch-only columns: reported, never in drifted_columns


@dataclass(frozen=True)
class Histogram:
    """Shares of reference and new values over shared bins, for the report's plots."""

    column: str
    x_label: str
    edges: list[float]
    reference: list[float]
    current: list[float]
    log10: bool = False  # values are log10 of the quantity: label the axis in the quantity


@dataclass(frozen=True)
class PerformanceDrift:
    """The champion on the new month compared with its score on the frozen test set."""

    metric: str
    test_set: float
    month: float
    drop: float
    max_drop: float
    flagged: bool
    champion_version: str | None = None


@dataclass(frozen=True)
class DriftReport:
    """Everything the monitor found for one month."""

    month: str
    reference_months: list[str]
    columns: list[ColumnDrift]
    histograms: list[Histogram] = field(default_factory=list)
    performance: PerformanceDrift | None = None
    config: DriftConfig = field(default_factory=DriftConfig)

    @property
    def drifted_columns(self) -> list[str]:
        """Names of drifted columns, plus `champion:<metric>` when the champion aged."""
        names = [c.column for c in self.columns if c.drifted and c.alarming]
        if self.performance is not None and self.performance.flagged:
            names.append(f"champion:{self.performance.metric}")
        return names

    @property
    def drifted(self) -> bool:
        """True when any column drifted or the champion's performance dropped."""
        return bool(self.drifted_columns)

    def column(self, name: str) -> ColumnDrift:
        """One column's result; KeyError naming it if absent."""
        for c in self.columns:
            if c.column == name:
                return c
        raise KeyError(f"no drift column {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (histograms included)."""
        return {
            "month": self.month,
            "reference_months": self.reference_months,
            "drifted": self.drifted,
            "drifted_columns": self.drifted_columns,
            "columns": [asdict(c) for c in self.columns],
            "histograms": [asdict(h) for h in self.histograms],
            "performance": asdict(self.performance) if self.performance else None,
            "config": self.config.model_dump(),
        }


# --------------------------------------------------------------------------------------------
# Signals of one month


def _reference_keys(numbers: pd.Series) -> set[str]:
    # The bare sequence number ("S:" key) is left out: a lone "42" also matches dates and amounts.
    return {k for n in numbers for k in invoice_keys(n) if not k.startswith("S:")}


def has_reference(batch: MonthBatch) -> np.ndarray:
    """Per transfer: does the title name an invoice open that month?

    Uses the matcher's normalised reference keys (the compacted number, its digits glued, its
    digit groups without leading zeros), so "FV/2025/03/0012", "fv 2025-03-12" and "2025030012"
    all count, but typos and bare sequence numbers do not: a lower bound of what clerks see.
    """
    keys = _reference_keys(batch.invoices["invoice_number"])
    return np.fromiter(
        (bool(title_keys(t) & keys) for t in batch.transfers["title"]),
        dtype=bool,
        count=len(batch.transfers),
    )


def pays_no_invoice(batch: MonthBatch) -> np.ndarray:
    """Per transfer: labelled with no invoice at all (fees, salaries, refunds...)."""
    labelled = set(batch.matches["transfer_id"].astype(str))
    return ~batch.transfers["transfer_id"].astype(str).isin(labelled).to_numpy()


def pays_several(batch: MonthBatch) -> np.ndarray:
    """Per transfer that pays invoices: does it pay two or more?"""
    counts = batch.matches.groupby("transfer_id")["invoice_id"].nunique()
    return (counts >= 2).to_numpy()


def payment_delays(batch: MonthBatch) -> np.ndarray:
    """Days from due date to booking date of every labelled (transfer, invoice) pair."""
    pairs = batch.matches[["transfer_id", "invoice_id"]].merge(
        batch.transfers[["transfer_id", "booking_date"]], on="transfer_id"
    )
    pairs = pairs.merge(batch.invoices[["invoice_id", "due_date"]], on="invoice_id")
    if pairs.empty:
        return np.zeros(0)
    delta = pd.to_datetime(pairs["booking_date"]) - pd.to_datetime(pairs["due_date"])
    return delta.dt.days.to_numpy(dtype=np.float64)


def _ibans(batch: MonthBatch) -> pd.Series:
    return batch.transfers["counterparty_iban"].map(normalize_iban)


def known_payers(batch: MonthBatch, history: Sequence[MonthBatch]) -> np.ndarray:
    """Per transfer: was its payer's account seen on a transfer of `history`? (no account: no)"""
    seen: set[str] = set()
    for month in history:
        seen.update(_ibans(month))
    seen.discard("")
    return _ibans(batch).isin(seen).to_numpy()


# --------------------------------------------------------------------------------------------
# Tests


def pair_signals(batch: MonthBatch) -> pd.DataFrame:
    """Model-independent features of each labelled (transfer, invoice) pair: how the payer's name
    and account compare with the invoice's, whether the title carries the invoice number's digits,
    and what share of the open amount was paid. Empty for an unlabelled month."""
    from rapidfuzz import fuzz

    columns = ["name_similarity", "iban_match", "number_in_title", "amount_share"]
    if batch.matches.empty:
        return pd.DataFrame(columns=columns)
    pairs = (
        batch.matches[["transfer_id", "invoice_id", "amount"]]
        .merge(
            batch.transfers[["transfer_id", "counterparty_name", "counterparty_iban", "title"]],
            on="transfer_id",
        )
        .merge(
            batch.invoices[
                [
                    "invoice_id",
                    "invoice_number",
                    "counterparty_name",
                    "counterparty_iban",
                    "open_amount",
                ]
            ],
            on="invoice_id",
            suffixes=("_t", "_i"),
        )
    )
    if pairs.empty:
        return pd.DataFrame(columns=columns)
    names_t = pairs["counterparty_name_t"].fillna("").astype(str).str.lower()
    names_i = pairs["counterparty_name_i"].fillna("").astype(str).str.lower()
    digits_title = pairs["title"].fillna("").astype(str).str.replace(r"\D", "", regex=True)
    digits_number = pairs["invoice_number"].astype(str).str.replace(r"\D", "", regex=True)
    open_amount = pairs["open_amount"].abs().replace(0, np.nan)
    return pd.DataFrame(
        {
            "name_similarity": [
                fuzz.token_set_ratio(a, b) / 100.0 for a, b in zip(names_t, names_i, strict=True)
            ],
            "iban_match": (
                pairs["counterparty_iban_t"].notna()
                & (pairs["counterparty_iban_t"] == pairs["counterparty_iban_i"])
            ).to_numpy(),
            "number_in_title": [
                bool(n) and n in t for n, t in zip(digits_number, digits_title, strict=True)
            ],
            "amount_share": (pairs["amount"].abs() / open_amount).clip(0, 2).fillna(1.0).to_numpy(),
        }
    )


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index over quantile bins of `reference`."""
    if len(reference) == 0 or len(current) == 0:
        return 0.0
    edges = np.unique(np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) < 2:
        # A constant reference: one bin for its value, one for anything else.
        edges = np.array([edges[0], np.nextafter(edges[0], np.inf)])
    edges[0], edges[-1] = -np.inf, np.inf
    ref = np.histogram(reference, edges)[0] / len(reference)
    cur = np.histogram(current, edges)[0] / len(current)
    ref, cur = np.clip(ref, _EPS, None), np.clip(cur, _EPS, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def ks_p_value(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov statistic and p-value (1.0 when a sample is empty)."""
    if len(reference) == 0 or len(current) == 0:
        return 0.0, 1.0
    # scipy.stats costs about a second to import: only the monitor needs it, so load it here.
    from scipy import stats

    result = stats.ks_2samp(reference, current)
    return float(result.statistic), float(result.pvalue)


def two_proportion_p_value(
    k_ref: int, n_ref: int, k_cur: int, n_cur: int, *, alternative: str = "two-sided"
) -> float:
    """p-value of the pooled two-proportion z-test; `alternative="less"`: the new rate is lower."""
    if n_ref == 0 or n_cur == 0:
        return 1.0
    pooled = (k_ref + k_cur) / (n_ref + n_cur)
    spread = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_ref + 1.0 / n_cur))
    if spread == 0.0:
        return 1.0  # both rates 0 or both 1: nothing changed
    z = (k_cur / n_cur - k_ref / n_ref) / spread
    if alternative == "less":
        return 0.5 * math.erfc(-z / math.sqrt(2.0))
    return math.erfc(abs(z) / math.sqrt(2.0))


def numeric_drift(
    column: str,
    reference: np.ndarray,
    current: np.ndarray,
    config: DriftConfig,
    description: str,
) -> ColumnDrift:
    """PSI (material) and KS (significant) of one numeric signal."""
    reference = reference[np.isfinite(reference)]
    current = current[np.isfinite(current)]
    value = psi(reference, current, config.bins)
    _, p_value = ks_p_value(reference, current)
    return ColumnDrift(
        column=column,
        kind="numeric",
        test="PSI + KS",
        statistic=value,
        p_value=p_value,
        threshold=config.psi_threshold,
        drifted=value >= config.psi_threshold and p_value < config.p_value,
        reference=float(np.median(reference)) if len(reference) else math.nan,
        current=float(np.median(current)) if len(current) else math.nan,
        n_reference=len(reference),
        n_current=len(current),
        description=description,
    )


def rate_drift(
    column: str,
    reference: np.ndarray,
    current: np.ndarray,
    config: DriftConfig,
    description: str,
    *,
    alternative: str = "two-sided",
) -> ColumnDrift:
    """Two-proportion z-test (significant) and absolute change (material) of one rate."""
    n_ref, n_cur = len(reference), len(current)
    k_ref, k_cur = int(np.sum(reference)), int(np.sum(current))
    ref_rate = k_ref / n_ref if n_ref else math.nan
    cur_rate = k_cur / n_cur if n_cur else math.nan
    change = cur_rate - ref_rate if n_ref and n_cur else 0.0
    p_value = two_proportion_p_value(k_ref, n_ref, k_cur, n_cur, alternative=alternative)
    material = (
        -change >= config.min_rate_change
        if alternative == "less"
        else abs(change) >= config.min_rate_change
    )
    return ColumnDrift(
        column=column,
        kind="rate",
        test="z-test" + (" (drop)" if alternative == "less" else ""),
        statistic=float(change),
        p_value=p_value,
        threshold=config.min_rate_change,
        drifted=material and p_value < config.p_value,
        reference=ref_rate,
        current=cur_rate,
        n_reference=n_ref,
        n_current=n_cur,
        description=description,
    )


def histogram(
    column: str,
    x_label: str,
    reference: np.ndarray,
    current: np.ndarray,
    bins: int = 24,
    *,
    log10: bool = False,
) -> Histogram:
    """Shares over equal-width bins spanning the 1st–99th percentiles of both samples."""
    both = np.concatenate([reference, current])
    both = both[np.isfinite(both)]
    if len(both) == 0:
        return Histogram(column, x_label, [0.0, 1.0], [0.0], [0.0], log10)
    lo, hi = np.quantile(both, [0.01, 0.99])
    if hi <= lo:
        lo, hi = float(both.min()), float(both.max()) + 1.0
    edges = np.linspace(lo, hi, bins + 1)

    def shares(values: np.ndarray) -> list[float]:
        values = values[np.isfinite(values)]
        if len(values) == 0:
            return [0.0] * bins
        # Outliers go to the end bins, so the shares still add up to one.
        counts = np.histogram(np.clip(values, lo, hi), edges)[0]
        return (counts / len(values)).tolist()

    return Histogram(column, x_label, edges.tolist(), shares(reference), shares(current), log10)


def performance_drift(
    test_metrics: dict[str, float] | None,
    month_metrics: dict[str, float] | None,
    *,
    max_drop: float = 0.05,
    metric: str = PRIMARY,
    champion_version: str | None = None,
) -> PerformanceDrift | None:
    """Flag the champion when `metric` on the new month is more than `max_drop` below its
    frozen-test-set value; None when either side lacks the metric."""
    if not test_metrics or not month_metrics:
        return None
    if metric not in test_metrics or metric not in month_metrics:
        return None
    drop = float(test_metrics[metric]) - float(month_metrics[metric])
    return PerformanceDrift(
        metric=metric,
        test_set=float(test_metrics[metric]),
        month=float(month_metrics[metric]),
        drop=drop,
        max_drop=max_drop,
        flagged=drop > max_drop,
        champion_version=champion_version,
    )


# --------------------------------------------------------------------------------------------
# The whole comparison


def _concat(parts: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(list(parts)) if parts else np.zeros(0)


def compute_drift(
    reference: Sequence[MonthBatch],
    current: MonthBatch,
    config: DriftConfig | None = None,
    *,
    performance: PerformanceDrift | None = None,
) -> DriftReport:
    """Compare `current` with the `reference` months (oldest first) on every signal."""
    cfg = config or DriftConfig()
    ref = list(reference)
    if cfg.max_reference_months is not None:
        ref = ref[-cfg.max_reference_months :]
    columns: list[ColumnDrift] = []
    histograms: list[Histogram] = []

    ref_amount = _concat([b.transfers["amount"].to_numpy(np.float64) for b in ref])
    cur_amount = current.transfers["amount"].to_numpy(np.float64)
    columns.append(numeric_drift("amount", ref_amount, cur_amount, cfg, "transfer amount"))
    # Amounts span cents to millions: bin the plot on a log scale (PSI and KS need not: both
    # depend only on the order of values, which a logarithm keeps).
    histograms.append(
        histogram(
            "amount",
            "transfer amount (log scale)",
            np.log10(ref_amount),
            np.log10(cur_amount),
            log10=True,
        )
    )

    ref_delay = _concat([payment_delays(b) for b in ref])
    cur_delay = payment_delays(current)
    columns.append(
        numeric_drift(
            "payment_delay_days",
            ref_delay,
            cur_delay,
            cfg,
            "days from due date to booking, per labelled (transfer, invoice) pair",
        )
    )
    histograms.append(histogram("payment_delay_days", "days after due date", ref_delay, cur_delay))

    columns.append(
        rate_drift(
            "reference_rate",
            _concat([has_reference(b) for b in ref]),
            has_reference(current),
            cfg,
            "titles naming an invoice open that month",
        )
    )
    columns.append(
        rate_drift(
            "no_invoice_rate",
            _concat([pays_no_invoice(b) for b in ref]),
            pays_no_invoice(current),
            cfg,
            "transfers paying no invoice",
        )
    )
    columns.append(
        rate_drift(
            "multi_invoice_rate",
            _concat([pays_several(b) for b in ref]),
            pays_several(current),
            cfg,
            "transfers paying two or more invoices, among those paying any",
        )
    )
    ref_pairs = pd.concat([pair_signals(b) for b in ref], ignore_index=True)
    cur_pairs = pair_signals(current)
    if len(ref_pairs) and len(cur_pairs):
        for name, label in (
            ("name_similarity", "payer name vs invoiced counterparty, per labelled pair"),
            ("amount_share", "share of the invoice's open amount paid, per labelled pair"),
        ):
            ref_values = ref_pairs[name].to_numpy(np.float64)
            cur_values = cur_pairs[name].to_numpy(np.float64)
            columns.append(numeric_drift(f"pair_{name}", ref_values, cur_values, cfg, label))
            histograms.append(histogram(f"pair_{name}", label, ref_values, cur_values))
        for name, label in (
            ("iban_match", "payer account equals the invoice's account, per labelled pair"),
            ("number_in_title", "the invoice number's digits appear in the title, per pair"),
        ):
            columns.append(
                rate_drift(
                    f"pair_{name}",
                    ref_pairs[name].to_numpy(bool),
                    cur_pairs[name].to_numpy(bool),
                    cfg,
                    label,
                )
            )
    if len(ref) >= 2:
        # The reference's own rate needs a history too: its last month against the ones before.
        # A rising rate is normal as history grows; only a drop (new payers) is drift.
        columns.append(
            rate_drift(
                "known_payer_rate",
                known_payers(ref[-1], ref[:-1]),
                known_payers(current, ref),
                cfg,
                "transfers from an account seen in earlier months",
                alternative="less",
            )
        )
    columns = [replace(c, alarming=False) if c.column in cfg.watch_only else c for c in columns]
    return DriftReport(
        month=current.month,
        reference_months=[b.month for b in ref],
        columns=columns,
        histograms=histograms,
        performance=performance,
        config=cfg,
    )
