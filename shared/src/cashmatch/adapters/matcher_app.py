"""The matcher's Serve application as both serving adapters roll it out (no Ray import).

`LocalRayServing` (local/ray_serving.py) applies it to a Ray head on this machine and
`GkeRayServing` (gcp/gke_serving.py) to the RayService's serveConfigV2 on GKE; a new model
version changes only the Matcher deployment's `user_config`, which Serve applies in place.
"""

from __future__ import annotations

from typing import Any

from cashmatch.domain.errors import PermanentError
from cashmatch.domain.model_records import ThresholdOverride

APP_NAME = "matcher"
DEPLOYMENT_NAME = "Matcher"


class RolloutFailed(Exception):
    """The new version did not come to answer in time (worth retrying)."""


class ArtifactRefused(RolloutFailed, PermanentError):
    """The version cannot serve (bad artifact, unknown version): the deployer parks the event."""


def set_version(
    config: dict[str, Any],
    version: str | None,
    fallback: str | None,
    override: ThresholdOverride | None = None,
) -> None:
    """Put the model version (and the guardrail's threshold override for it, if any) into the
    matcher deployment's user_config (all that changes)."""
    (app,) = (a for a in config["applications"] if a["name"] == APP_NAME)
    deployments = app.setdefault("deployments", [])
    found = [d for d in deployments if d["name"] == DEPLOYMENT_NAME]
    if not found:
        found = [{"name": DEPLOYMENT_NAME}]
        deployments.append(found[0])
    user_config: dict[str, Any] = {"model_version": version, "fallback_version": fallback}
    if override is not None:
        user_config |= {"threshold": override.threshold, "threshold_source": override.describe()}
    found[0]["user_config"] = user_config


def threshold_source(override: ThresholdOverride | None) -> str:
    """What `GET /v1/model` reports as `threshold_source` once the roll-out has applied."""
    return "model" if override is None else override.describe()
