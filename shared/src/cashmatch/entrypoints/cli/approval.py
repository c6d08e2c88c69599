"""`cashmatch approve` / `cashmatch reject`: the person in the loop, when approval is required."""

from __future__ import annotations

import datetime as dt
import getpass

from cashmatch.domain.events import derived_id, parse_event
from cashmatch.domain.model_records import Approval
from cashmatch.service_layer.context import Ports
from cashmatch.service_layer.publishing import already_published, publish_event


def decide(
    ports: Ports, version: str, *, approved: bool, reason: str
) -> tuple[Approval, str | None]:
    """Record the decision; on approval, republish the version's evaluation.passed so the
    deployer rolls it out through its usual path. Returns the decision that stands and the id of
    the republished event, None on a rejection.

    A decision is final. Approving again republishes under the same id, so the bus drops it when
    it already has it (no second roll-out or alert), and a republish an earlier approval failed
    to make gets made."""
    verdict = ports.registry.verdict(version)
    if verdict is None or not verdict.passed:
        raise ValueError(f"{version} has no passing verdict: nothing to approve or reject")
    decision = ports.registry.record_approval(
        Approval(
            version=version,
            approved=approved,
            by=f"cli:{getpass.getuser()}",
            reason=reason,
            at=dt.datetime.now(dt.UTC),
        )
    )
    if not (decision.approved and approved):
        return decision, None
    _, data, _ = ports.bus.get_message(verdict.event_id)
    original = parse_event(data)
    republished_id = derived_id(verdict.event_id, "approved")
    if not already_published(ports.bus, republished_id):
        copy = original.model_copy(update={"id": republished_id, "time": dt.datetime.now(dt.UTC)})
        publish_event(ports.bus, copy)
    return decision, republished_id
