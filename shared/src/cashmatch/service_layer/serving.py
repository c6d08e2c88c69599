"""The Serving port's null adapter: the registry's deployed pointer is the whole roll-out.

The real adapters are `LocalRayServing` (adapters/local/ray_serving.py: Ray Serve on this
machine) and `GkeRayServing` (adapters/gcp/gke_serving.py: the KubeRay RayService on GKE). Each
changes only the matcher's `user_config` for a new version and returns once it answers; a
rollback is a roll-out of the older version.
"""

from __future__ import annotations

from cashmatch.domain.model_records import ModelRecord, ThresholdOverride


class NoServing:
    """No serving configured: the registry's deployed pointer is the whole roll-out."""

    def roll_out(self, record: ModelRecord, override: ThresholdOverride | None = None) -> str:
        """Nothing to start; say so in the endpoint."""
        return "registry-only (no serving configured)"
