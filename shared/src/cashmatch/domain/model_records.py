"""What the registry keeps: model versions, verdicts, approvals and the pointers' history.

Plain records, written once (versions, verdicts, approvals) or moved by compare-and-swap
(pointers) by `service_layer/registry.py`; events and reports carry the same `Verdict`.
"""

from __future__ import annotations

import datetime as dt

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


class Verdict(BaseModel):
    """The evaluator's decision about one version, written once."""

    version: str
    passed: bool
    reasons: list[str]
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    champion_version: str | None
    champion_metrics: dict[str, float] | None
    newest_month_metrics: dict[str, dict[str, float]] = Field(default_factory=dict)
    report_uri: str | None = None
    decided_at: dt.datetime
    event_id: str = Field(description="id of the verdict event, reused on redelivery")
    caused_by: str = Field(description="id of the model.trained event judged")
    test_set_version: str | None = Field(None, description="the frozen test set it was scored on")


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
