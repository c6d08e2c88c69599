"""The Serving port: how the deployer puts an approved model in front of clients.

Adapters: `NoServing` (the registry's deployed pointer only), `LocalRayServing`
(shared/adapters/local/ray_serving.py: Ray Serve on this machine) and `GkeRayServing`
(shared/adapters/gcp/gke_serving.py: the KubeRay RayService on GKE). Each changes only the
matcher's `user_config` for a new version, and returns once the version answers; a rollback is
a roll-out of the older version.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from shared.registry import ModelRecord


@runtime_checkable
class Serving(Protocol):
    """Rolls a registered model version out; returns where it now answers."""

    def roll_out(self, record: ModelRecord) -> str:
        """Serve `record.version`; return the endpoint once it answers, or raise why not."""
        ...


class NoServing:
    """No serving configured: the registry's deployed pointer is the whole roll-out."""

    def roll_out(self, record: ModelRecord) -> str:
        """Nothing to start; say so in the endpoint."""
        return "registry-only (no serving configured)"
