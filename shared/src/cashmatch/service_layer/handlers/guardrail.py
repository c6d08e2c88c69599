"""Guardrail (the deployer's second subscription): performance.breached → act on the promise.

The action is a setting (CASHMATCH_GUARDRAIL_ACTION):
- `raise-threshold` (default): serve the breached version at the lowest threshold that would
  have held the target on the closed month, through the same `user_config` a model swap uses;
- `rollback`: serve the newest other version whose realized precision held, at its own threshold;
- `alert`: change nothing (the alerter's own subscription tells a person either way).
A breach of a version that no longer serves changes nothing; a redelivered breach finds the
override already set by its event and only makes sure the replicas have it.
"""

from __future__ import annotations

import logging

from cashmatch.domain.errors import PermanentError
from cashmatch.domain.events import Envelope, ModelDeployed, PerformanceBreached
from cashmatch.domain.model_records import ThresholdOverride
from cashmatch.service_layer import performance_records
from cashmatch.service_layer.context import Ports
from cashmatch.service_layer.publishing import publish_answer
from cashmatch.service_layer.release_gate import release_refusal

log = logging.getLogger(__name__)
SOURCE = "/services/deployer"


def guard(event: Envelope, ports: Ports) -> str:
    """Handle performance.breached with the configured action."""
    payload = event.payload()
    assert isinstance(payload, PerformanceBreached)
    deployed, _ = ports.registry.deployed()
    if deployed.version != payload.model_version:
        return f"{payload.model_version} no longer serves (now {deployed.version}): nothing to do"
    action = ports.settings.guardrail_action
    if action == "alert":
        return f"breach of {payload.model_version} in {payload.month}: alert only"
    if action == "rollback":
        return _roll_back(ports, event, payload)
    return _raise_threshold(ports, event, payload)


def _shortfall(payload: PerformanceBreached) -> str:
    precision = "none" if payload.auto_precision is None else f"{payload.auto_precision:.2%}"
    lower = "–" if payload.auto_precision_lower is None else f"{payload.auto_precision_lower:.2%}"
    return (
        f"{payload.auto} auto decisions in {payload.month} {precision} right "
        f"(lower bound {lower} < {payload.target:.0%})"
    )


def _raise_threshold(ports: Ports, event: Envelope, payload: PerformanceBreached) -> str:
    registry = ports.registry
    version = payload.model_version
    wanted = payload.holding_threshold
    if wanted is None:
        wanted = (
            performance_records.NOTHING_AUTO
        )  # no cut held: nothing is settled without a person
    current = registry.override_for(version)
    in_force = current.threshold if current is not None else payload.threshold
    if wanted <= in_force:
        # The point precision met the target: the bound is short for want of decisions, and a
        # higher cut would only settle fewer. A person decides (the alert says so).
        return (
            f"{version}: {_shortfall(payload)}; threshold {in_force:.4f} already holds the "
            f"target on {payload.month}: not raised"
        )
    override = ThresholdOverride(
        threshold=wanted,
        version=version,
        month=payload.month,
        set_at=ports.clock(),
        by=event.id,
        reason=_shortfall(payload),
    )
    _, changed = registry.set_override(override, by=event.id, reason=override.reason)
    record = registry.get(version)
    # Redelivered or not, the replicas are made to serve what the registry now says.
    ports.serving.roll_out(record, registry.override_for(version))
    verb = "raised" if changed else "already raised"
    outcome = f"{version}: threshold {verb} {payload.threshold:.4f} → {wanted:.4f}"
    log.warning("%s (%s)", outcome, override.reason)
    return outcome


def _roll_back(ports: Ports, event: Envelope, payload: PerformanceBreached) -> str:
    registry = ports.registry
    target = _last_holding_version(ports, payload)
    if target is None:
        raise PermanentError(
            f"no version other than {payload.model_version} held the target on a closed month: "
            "nothing to roll back to (set CASHMATCH_GUARDRAIL_ACTION=raise-threshold)"
        )
    refusal = release_refusal(registry, ports.settings, target)
    if refusal is not None:
        raise PermanentError(f"rollback to {target} refused: {refusal}")
    record = registry.get(target)
    endpoint = ports.serving.roll_out(record, registry.override_for(target))
    registry.mark_deployed(
        target, endpoint=endpoint, by=event.id, reason=f"guardrail: {_shortfall(payload)}"
    )
    answer = ModelDeployed(
        month=payload.month,
        model_version=target,
        dataset_version=record.dataset_version,
        endpoint=endpoint,
        caused_by=event.id,
    )
    publish_answer(ports, event, answer, SOURCE)
    return f"rolled back {payload.model_version} → {target}: {_shortfall(payload)}"


def _last_holding_version(ports: Ports, payload: PerformanceBreached) -> str | None:
    """The version, other than the breached one, whose newest realized month held the target."""
    newest: dict[str, tuple[str, bool]] = {}
    for month, records in performance_records.months_realized(ports).items():
        for record in records:
            if record.holds is not None:
                newest[record.version] = (month, record.holds)
    held = [
        (month, version)
        for version, (month, holds) in newest.items()
        if holds and version != payload.model_version
    ]
    return max(held)[1] if held else None
