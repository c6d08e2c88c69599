"""The ModelCatalog port: a mirror of the champion in an outside model catalogue.

`MirroredRegistry` is the registry with that mirror attached: whenever a version becomes
champion, the catalogue is told (Vertex AI Model Registry on the gcp stack). The mirror runs
before a passing verdict is written, so a failed mirror fails the evaluation, which is retried
and mirrors again; the registry's own champion pointer stays the source of truth.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

from shared.ports import BlobStore
from shared.registry import ModelRecord, ModelRegistry, Pointer, Verdict

log = logging.getLogger(__name__)


@runtime_checkable
class ModelCatalog(Protocol):
    """Keeps an outside catalogue's "champion" in step with the registry."""

    def publish_champion(self, record: ModelRecord) -> str:
        """Make sure `record` is in the catalogue and marked champion; return its name there.

        Idempotent: publishing the same version twice changes nothing the second time.
        """
        ...


class MirroredRegistry(ModelRegistry):
    """A ModelRegistry that mirrors every new champion into a ModelCatalog."""

    def __init__(self, blobs: BlobStore, catalog: ModelCatalog) -> None:
        super().__init__(blobs)
        self.catalog = catalog

    def promote(self, version: str, expected_generation: int, *, by: str, reason: str) -> Pointer:
        """Move the champion pointer (compare-and-swap), then mirror the new champion."""
        pointer = super().promote(version, expected_generation, by=by, reason=reason)
        self._mirror(version)
        return pointer

    def record_verdict(self, verdict: Verdict) -> Verdict:
        """Mirror a passing verdict's version (if it is champion) before the verdict is written.

        The verdict is an evaluation's last write: a retry after a failed mirror finds the
        champion already moved, judges again, and comes back here to mirror once more.
        """
        if verdict.passed and self.champion()[0].version == verdict.version:
            self._mirror(verdict.version)
        return super().record_verdict(verdict)

    def _mirror(self, version: str) -> None:
        name = self.catalog.publish_champion(self.get(version))
        log.info("champion %s mirrored as %s", version, name)
