"""The Serving port: how the deployer puts an approved model in front of clients."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from shared.registry import ModelRecord


@runtime_checkable
class Serving(Protocol):
    """Rolls a registered model version out; returns where it now answers."""

    def roll_out(self, record: ModelRecord) -> str: ...


class NoServing:
    """No serving configured: the registry's deployed pointer is the whole roll-out."""

    def roll_out(self, record: ModelRecord) -> str:
        """Nothing to start; say so in the endpoint."""
        return "registry-only (no serving configured)"
