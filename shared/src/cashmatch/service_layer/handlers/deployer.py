"""Deployer: evaluation.passed → roll the champion out → model.deployed."""

from __future__ import annotations

import logging

from cashmatch.domain.errors import PermanentError
from cashmatch.domain.events import Envelope, EvaluationPassed, ModelDeployed
from cashmatch.service_layer.context import Ports
from cashmatch.service_layer.publishing import publish_answer
from cashmatch.service_layer.release_gate import release_refusal

log = logging.getLogger(__name__)
SOURCE = "/services/deployer"


def deploy(event: Envelope, ports: Ports) -> str:
    """Handle evaluation.passed; a verdict overtaken by a newer champion is not rolled out."""
    payload = event.payload()
    assert isinstance(payload, EvaluationPassed)
    registry = ports.registry
    try:
        record = registry.get(payload.model_version)
    except KeyError as exc:
        raise PermanentError(str(exc)) from None
    champion, _ = registry.champion()
    if champion.version != record.version:
        # Out-of-order delivery: rolling an older winner out would undo a newer promotion.
        return f"skipped {record.version}: the champion is now {champion.version}"
    refusal = release_refusal(registry, ports.settings, record.version)
    if refusal is not None:
        # Acked, not retried: `cashmatch approve` republishes this event when a person decides.
        return refusal
    deployed, _ = registry.deployed()
    if deployed.version == record.version and deployed.endpoint:
        endpoint = deployed.endpoint
        outcome = f"{record.version} already deployed at {endpoint}"
    else:
        # A new champion starts from its own threshold: an override names the version it holds for.
        endpoint = ports.serving.roll_out(record, registry.override_for(record.version))
        registry.mark_deployed(
            record.version, endpoint=endpoint, by=event.id, reason="evaluation passed"
        )
        outcome = f"deployed {record.version} at {endpoint}"
    answer = ModelDeployed(
        month=payload.month,
        model_version=record.version,
        dataset_version=record.dataset_version,
        endpoint=endpoint,
        caused_by=event.id,
    )
    publish_answer(ports, event, answer, SOURCE)
    log.info(outcome)
    return outcome
