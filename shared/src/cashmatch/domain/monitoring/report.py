"""What the monitor finds for one month, as values: the thresholds it applies, a verdict per
signal, the histograms it plots, the champion's performance drop, and the report holding them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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
