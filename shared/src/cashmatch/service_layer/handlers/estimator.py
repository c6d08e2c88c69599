"""Estimator: model.deployed → what the confidences promise for the open month, recorded.

At every roll-out the version just deployed is replayed on the transfers booked so far in the
month it now serves (`performance.record_rollout_estimate`): the expected auto share and
precision from its calibrated confidences, before any label exists. At that month's close the
realized figure stands beside it (`cashmatch performance --json`, the HTML reports).

Its own subscription, in the monitor's service rather than the deployer's: the estimate loads
the model, and the deployer's image carries no scikit-learn; and a failed estimate can then
never fail or delay a roll-out. What cannot be estimated is recorded with the reason.
"""

from __future__ import annotations

import logging

from cashmatch.domain.events import Envelope, ModelDeployed
from cashmatch.service_layer import performance
from cashmatch.service_layer.context import Ports

log = logging.getLogger(__name__)


def estimate_after_rollout(event: Envelope, ports: Ports) -> str:
    """Handle model.deployed: record the estimate of the month after the one closed."""
    payload = event.payload()
    assert isinstance(payload, ModelDeployed)
    version = payload.model_version
    month, found, why_not = performance.record_rollout_estimate(
        ports, payload.month, version, event.id
    )
    if found is None:
        if why_not != "already recorded":
            log.warning("no estimate of %s for %s: %s", version, month, why_not)
        return f"{version} on {month}: no estimate ({why_not})"
    expected = found.expected_auto_precision
    said = "–" if expected is None else f"{expected:.2%}"
    return (
        f"{version} on {month} so far: {found.transfers} transfers, auto {found.auto_share:.1%},"
        f" expected precision {said}"
    )
