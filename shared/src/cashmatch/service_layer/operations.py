"""What a person does to the chain by hand: redrive a dead-lettered event, republish one, approve
or reject a passed version. The CLI (`cashmatch redrive/republish/approve/reject`) and the web
console (`cashmatch ui`) call these same functions, so a button changes the bus and the registry
exactly as the command does; each call also writes one action record (who, what, when, the
outcome) under `audit/actions/` in the blob store, which `actions()` reads back.

`by` names the person: `cli:<user>` from the command line, `console:<user>` from the console.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

from pydantic import BaseModel

from cashmatch.domain.events import MalformedEvent, derived_id, parse_event
from cashmatch.domain.model_records import Approval
from cashmatch.ports import BlobStore, EventBus
from cashmatch.service_layer.context import Ports
from cashmatch.service_layer.publishing import already_published, publish_event

AUDIT = "audit/actions"


class NothingToDo(ValueError):
    """The action does not apply (no dead delivery, no passing verdict, an unknown id)."""


class Action(BaseModel):
    """One thing a person did by hand, as the audit log keeps it."""

    action: str  # redrive | republish | approve | reject
    target: str  # an event id or a model version
    by: str
    at: dt.datetime
    reason: str = ""
    outcome: str


def _record(blobs: BlobStore, action: Action) -> Action:
    key = f"{AUDIT}/{action.at.strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}.json"
    blobs.put(key, action.model_dump_json(indent=2).encode(), if_generation_match=0)
    return action


def actions(blobs: BlobStore, *, limit: int = 50) -> list[Action]:
    """The newest actions first."""
    keys = sorted(blobs.list(f"{AUDIT}/"), reverse=True)[:limit]
    return [Action.model_validate_json(blobs.get(k).data) for k in keys]


def full_event_id(bus: EventBus, given: str) -> str:
    """The full id of the event `given` names: its id, or a start of it (4 characters or more)
    that only one event has; NothingToDo saying why otherwise."""
    try:
        bus.get_message(given)
        return given
    except KeyError:
        pass
    found = sorted(
        {r.message_id for r in bus.log(limit=1_000_000) if r.message_id.startswith(given)}
    )
    if len(given) < 4 or not found:
        raise NothingToDo(f"no event with id {given!r}")
    if len(found) > 1:
        raise NothingToDo(
            f"{given!r} starts {len(found)} event ids ({', '.join(found[:3])}, ...): give more"
        )
    return found[0]


def redrive(ports: Ports, event_id: str, *, subscriber: str | None = None, by: str) -> int:
    """Make the dead deliveries of an event due again (of one subscriber, or all); returns how
    many. NothingToDo when it has none."""
    count = ports.bus.redrive(event_id, subscriber)
    if count == 0:
        raise NothingToDo(f"no dead delivery of {event_id}")
    outcome = f"redriven {count} deliver{'y' if count == 1 else 'ies'}"
    if subscriber:
        outcome += f" to {subscriber}"
    _record(
        ports.blobs,
        Action(action="redrive", target=event_id, by=by, at=ports.clock(), outcome=outcome),
    )
    return count


def republish(
    ports: Ports, event_id: str, *, by: str, new_id: Callable[[], str] | None = None
) -> tuple[str, str]:
    """Publish a copy of an earlier event with a new id, to redo the step it triggers; returns
    (topic, new id). A message that is not a valid event is copied byte for byte."""
    topic, data, attributes = ports.bus.get_message(event_id)
    made = (new_id or (lambda: str(uuid.uuid4())))()
    try:
        original = parse_event(data)
        publish_event(ports.bus, original.model_copy(update={"id": made, "time": ports.clock()}))
    except MalformedEvent:
        ports.bus.publish(
            topic, data, {**attributes, "republished_from": event_id}, message_id=made
        )
    _record(
        ports.blobs,
        Action(
            action="republish",
            target=event_id,
            by=by,
            at=ports.clock(),
            outcome=f"republished on {topic} as {made}",
        ),
    )
    return topic, made


def decide(
    ports: Ports, version: str, *, approved: bool, reason: str, by: str
) -> tuple[Approval, str | None]:
    """Record a person's decision on a passed version; on approval, republish the version's
    evaluation.passed so the deployer rolls it out through its usual path. Returns the decision
    that stands and the id of the republished event (None on a rejection).

    A decision is final. Approving again republishes under the same id, so the bus drops it when
    it already has it (no second roll-out or alert), and a republish an earlier approval failed
    to make gets made. NothingToDo for a version without a passing verdict (or unknown)."""
    verdict = ports.registry.verdict(version)
    if verdict is None or not verdict.passed:
        raise NothingToDo(f"{version} has no passing verdict: nothing to approve or reject")
    decision = ports.registry.record_approval(
        Approval(version=version, approved=approved, by=by, reason=reason, at=ports.clock())
    )
    word = "approve" if approved else "reject"
    if decision.approved != approved:
        outcome = f"refused: already {'approved' if decision.approved else 'rejected'}"
        outcome += f" by {decision.by}"
    else:
        outcome = "approved" if approved else "rejected"
    republished_id = None
    if decision.approved and approved:
        _, data, _ = ports.bus.get_message(verdict.event_id)
        original = parse_event(data)
        republished_id = derived_id(verdict.event_id, "approved")
        if not already_published(ports.bus, republished_id):
            copy = original.model_copy(update={"id": republished_id, "time": ports.clock()})
            publish_event(ports.bus, copy)
        outcome += f"; evaluation.passed republished as {republished_id}"
    _record(
        ports.blobs,
        Action(
            action=word, target=version, by=by, at=ports.clock(), reason=reason, outcome=outcome
        ),
    )
    return decision, republished_id
