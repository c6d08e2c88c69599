"""What the registry keeps: model versions, verdicts, approvals and the pointers' history.

Plain records, written once (versions, verdicts, approvals) or moved by compare-and-swap
(pointers) by `service_layer/registry.py`; events and reports carry the same `Verdict`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field


class ModelRecord(BaseModel):
    """One trained model version and where it came from."""

    version: str
    model_uri: str
    artifact_digest: str
    dataset_uri: str
    dataset_version: str
    training_months: list[str]
    training_metrics: dict[str, float]
    created_at: dt.datetime
    caused_by: str


class VerdictScores(BaseModel):
    """What a verdict says of a candidate: the registry keeps it (`Verdict`), the verdict's event
    carries it (`events.EvaluationPassed` / `EvaluationRejected`), the report shows it."""

    metrics: dict[str, float] = Field(description="candidate on the frozen test set")
    baseline_metrics: dict[str, float] = Field(description="rules baseline on the same set")
    champion_version: str | None = Field(description="champion at the time of the verdict")
    champion_metrics: dict[str, float] | None = Field(description="the champion on the same set")
    newest_month_metrics: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="candidate/champion/rules scored on the newest month"
    )
    reasons: list[str] = Field(description="the verdict in words")
    report_uri: str | None = Field(None, description="the evaluation report (HTML)")
    caused_by: str = Field(description="id of the model.trained event judged")

    def scores(self) -> dict[str, Any]:
        """These fields alone, to carry into an event."""
        return {name: getattr(self, name) for name in VerdictScores.model_fields}


class Verdict(VerdictScores):
    """The evaluator's decision about one version, written once."""

    version: str
    passed: bool
    decided_at: dt.datetime
    event_id: str = Field(description="id of the verdict event, reused on redelivery")
    test_set_version: str | None = Field(None, description="the frozen test set it was scored on")

    def metrics_by_role(self) -> dict[str, dict[str, float] | None]:
        """Candidate, champion and rules metrics, as the report and alerts show them."""
        return {
            "candidate": self.metrics,
            "champion": self.champion_metrics,
            "rules": self.baseline_metrics,
        }


class PointerChange(BaseModel):
    """One move of the champion or deployed pointer."""

    version: str
    previous: str | None
    at: dt.datetime
    by: str = Field(description="what caused it: an event id, or a person's command")
    reason: str


class Approval(BaseModel):
    """A person's decision on rolling a passed version out (only when approval is required)."""

    version: str
    approved: bool
    by: str
    reason: str
    at: dt.datetime


class Pointer(BaseModel):
    """The current value of a pointer and every change that led to it."""

    version: str | None = None
    endpoint: str | None = None
    history: list[PointerChange] = Field(default_factory=list)


class ThresholdOverride(BaseModel):
    """A serving threshold set above a model's own by the guardrail or a person.

    `version` is the version it applies to: a new champion starts from its own calibrated
    threshold, unless the override is kept on purpose (`version` None: every version).
    """

    threshold: float = Field(ge=0.0, description="auto-settle when confidence ≥ this")
    version: str | None = Field(description="the version it holds for; None: kept for all")
    month: str | None = Field(None, description="the closed month whose labels called for it")
    set_at: dt.datetime
    by: str = Field(description="an event id (the guardrail) or a person's command")
    reason: str

    def describe(self) -> str:
        """Where it came from, in a few words (/v1/model, status, realized records)."""
        month = f" after {self.month}" if self.month else ""
        return f"guardrail{month}: {self.reason} (by {self.by})"

    def applies_to(self, version: str) -> bool:
        """Whether replicas serving `version` use this threshold."""
        return self.version is None or self.version == version


class GuardrailChange(BaseModel):
    """One change of the threshold override: set (with the override) or cleared (None)."""

    override: ThresholdOverride | None
    at: dt.datetime
    by: str
    reason: str


class Guardrail(BaseModel):
    """The override in force (None: every version serves at its own threshold) and its history."""

    override: ThresholdOverride | None = None
    history: list[GuardrailChange] = Field(default_factory=list)

    def changed_by(self, cause: str) -> bool:
        """True when `cause` (an event id) already changed the override: redeliveries do not."""
        return any(change.by == cause for change in self.history)

    def in_force_at(self, at: dt.datetime) -> ThresholdOverride | None:
        """The override in force at a moment, from the history."""
        current = None
        for change in self.history:
            if change.at <= at:
                current = change.override
        return current
