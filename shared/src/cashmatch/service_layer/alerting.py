"""Which events and bus records deserve an alert, and what it says."""

from __future__ import annotations

from cashmatch.domain.alerts import Alert
from cashmatch.domain.events import (
    DriftDetected,
    Envelope,
    EvaluationRejected,
    MalformedEvent,
    ModelDeployed,
    PerformanceBreached,
)
from cashmatch.ports import BusRecord

PRIMARY = "auto_rate@99"


def _primary(metrics: dict[str, float] | None) -> str:
    if not metrics or PRIMARY not in metrics:
        return "–"
    return f"{metrics[PRIMARY]:.3f}"


def alert_for_event(envelope: Envelope) -> Alert | None:
    """The alert for a rejection, a deployment, a drift or a breach; None for any other event.

    A passed evaluation gets none: its deployment follows and is the news.
    """
    try:
        payload = envelope.payload()
    except MalformedEvent:
        return None  # a malformed event reaches people as a dead letter instead
    if isinstance(payload, EvaluationRejected):
        versions = {"candidate": payload.model_version}
        if payload.champion_version:
            versions["champion"] = payload.champion_version
        return Alert(
            kind="rejection",
            title=f"Model {payload.model_version} rejected for {payload.month}",
            month=payload.month,
            versions=versions,
            link=payload.report_uri,
            details=[
                *payload.reasons,
                f"{PRIMARY}: candidate {_primary(payload.metrics)}, "
                f"champion {_primary(payload.champion_metrics)}, "
                f"rules {_primary(payload.baseline_metrics)}",
            ],
        )
    if isinstance(payload, ModelDeployed):
        return Alert(
            kind="deployment",
            title=f"Model {payload.model_version} deployed",
            month=payload.month,
            versions={"deployed": payload.model_version},
            link=payload.endpoint,
            details=[f"dataset {payload.dataset_version}", f"serving at {payload.endpoint}"],
        )
    if isinstance(payload, DriftDetected):
        versions = {"champion": payload.champion_version} if payload.champion_version else {}
        return Alert(
            kind="drift",
            title=f"Drift in {payload.month}: {', '.join(payload.drifted_columns)}",
            month=payload.month,
            versions=versions,
            link=payload.report_uri,
            details=[
                f"drifted: {', '.join(payload.drifted_columns)}",
                f"dataset {payload.dataset_version}",
            ],
        )
    if isinstance(payload, PerformanceBreached):
        return _breach(payload)
    return None


def _breach(payload: PerformanceBreached) -> Alert:
    precision = "–" if payload.auto_precision is None else f"{payload.auto_precision:.2%}"
    lower = "–" if payload.auto_precision_lower is None else f"{payload.auto_precision_lower:.2%}"
    holding = "none" if payload.holding_threshold is None else f"{payload.holding_threshold:.4f}"
    return Alert(
        kind="breach",
        title=f"Promise broken in {payload.month}: {payload.model_version} auto-settled "
        f"{precision} right (lower bound {lower} < {payload.target:.0%})",
        month=payload.month,
        versions={"deployed": payload.model_version},
        link=payload.report_uri,
        details=[
            f"{payload.auto} auto decisions ({payload.auto_share:.1%} of the month) at "
            f"threshold {payload.threshold:.4f} ({payload.threshold_source})",
            f"lowest threshold that would have held the target: {holding}",
            "the guardrail acts as CASHMATCH_GUARDRAIL_ACTION says; see cashmatch guardrail show",
        ],
    )


def alert_for_dead_letter(record: BusRecord) -> Alert:
    """The alert for a message parked on the dead letter (never retried again)."""
    who = record.subscription or "the bus"
    month = record.attributes.get("month") or None
    return Alert(
        kind="dead_letter",
        title=f"{record.topic} event parked by {who}",
        month=month,
        details=[
            record.detail or "no reason recorded",
            f"message {record.message_id}, {record.attempts} attempt(s)",
            f"once fixed: cashmatch redrive {record.message_id}",
        ],
    )


def alert_for_parked_push(
    service: str, event_id: str, reason: str, *, month: str | None = None
) -> Alert:
    """The alert for an event the push edge parked on the dead-letter topic: it is not retried
    (Pub/Sub was answered 2xx), so the alert says so and how to redo it once fixed."""
    return Alert(
        kind="dead_letter",
        title=f"{service} parked event {event_id}",
        month=month,
        details=[
            reason,
            "parked on the dead-letter topic at the first delivery; it is not retried",
            "once fixed: publish the event again (cashmatch republish, or the finance system)",
        ],
    )


def alert_for_failure(
    service: str, message_id: str, error: str, *, attempt: int = 1, month: str | None = None
) -> Alert:
    """The alert for a handler that failed (and will be retried)."""
    return Alert(
        kind="failure",
        title=f"{service} failed on {message_id}",
        month=month,
        details=[error, f"attempt {attempt}; it will be retried with backoff"],
    )
