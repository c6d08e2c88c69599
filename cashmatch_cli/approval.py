"""`cashmatch approve` / `cashmatch reject`: the person in the loop, when approval is required."""

from __future__ import annotations

import datetime as dt
import getpass
import uuid

from shared.bootstrap import Ports
from shared.events import parse_event
from shared.publishing import publish_event
from shared.registry import Approval


def decide(
    ports: Ports, version: str, *, approved: bool, reason: str
) -> tuple[Approval, str | None]:
    """Record the decision; on approval, republish the version's evaluation.passed so the
    deployer rolls it out through its usual path. Returns the decision that stands and the new
    event id, None when nothing was published: a rejection, or a version decided before (a
    decision is final, and a second approval must not roll out and alert again)."""
    verdict = ports.registry.verdict(version)
    if verdict is None or not verdict.passed:
        raise ValueError(f"{version} has no passing verdict: nothing to approve or reject")
    mine = Approval(
        version=version,
        approved=approved,
        by=f"cli:{getpass.getuser()}",
        reason=reason,
        at=dt.datetime.now(dt.UTC),
    )
    decision = ports.registry.record_approval(mine)
    if decision != mine or not approved:
        return decision, None
    _, data, _ = ports.bus.get_message(verdict.event_id)
    original = parse_event(data)
    copy = original.model_copy(update={"id": str(uuid.uuid4()), "time": dt.datetime.now(dt.UTC)})
    publish_event(ports.bus, copy)
    return decision, copy.id
