"""A mirror of the champion in an outside model catalogue (the ModelCatalog port).

`MirroredRegistry` is the registry with that mirror attached: whenever a version becomes
champion, the catalogue is told (Vertex AI Model Registry on the gcp stack). The mirror runs
before a passing verdict is written, so a failed mirror fails the evaluation, which is retried
and mirrors again; the registry's own champion pointer stays the source of truth.
"""

from __future__ import annotations

import logging

from cashmatch.domain.model_records import Pointer, Verdict
from cashmatch.ports import BlobStore, ModelCatalog
from cashmatch.service_layer.registry import ModelRegistry

log = logging.getLogger(__name__)


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
