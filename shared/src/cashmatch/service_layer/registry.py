"""The model registry, kept as JSON objects in any BlobStore.

Versions are immutable records (created with "only if absent"); the champion and the deployed
version are pointers changed only by compare-and-swap on the blob generation, so two evaluators
can never both win. Every change of a pointer is appended to its history with who caused it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from cashmatch.domain.model_records import (
    Approval,
    Guardrail,
    GuardrailChange,
    ModelRecord,
    Pointer,
    PointerChange,
    ThresholdOverride,
    Verdict,
)
from cashmatch.ports import BlobNotFound, BlobStore, PreconditionFailed

PREFIX = "registry"


class ModelRegistry:
    """Versions, verdicts, and the champion / deployed pointers over a BlobStore."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    # versions ---------------------------------------------------------------
    def register(self, record: ModelRecord) -> ModelRecord:
        """Store a version once; registering the same version again returns the stored one."""
        key = f"{PREFIX}/models/{record.version}.json"
        try:
            self.blobs.put(key, record.model_dump_json(indent=2).encode(), if_generation_match=0)
        except PreconditionFailed:
            return self.get(record.version)
        return record

    def get(self, version: str) -> ModelRecord:
        """The record of a version; KeyError naming it if unknown."""
        try:
            blob = self.blobs.get(f"{PREFIX}/models/{version}.json")
        except BlobNotFound:
            raise KeyError(f"no model version {version!r} in the registry") from None
        return ModelRecord.model_validate_json(blob.data)

    def versions(self) -> list[ModelRecord]:
        """Every version, oldest first."""
        records = [
            ModelRecord.model_validate_json(self.blobs.get(key).data)
            for key in self.blobs.list(f"{PREFIX}/models/")
        ]
        return sorted(records, key=lambda r: r.created_at)

    # verdicts ---------------------------------------------------------------
    def record_verdict(self, verdict: Verdict) -> Verdict:
        """Write a version's verdict once; a second attempt returns the first verdict."""
        key = f"{PREFIX}/verdicts/{verdict.version}.json"
        try:
            self.blobs.put(key, verdict.model_dump_json(indent=2).encode(), if_generation_match=0)
        except PreconditionFailed:
            existing = self.verdict(verdict.version)
            assert existing is not None
            return existing
        return verdict

    def verdict(self, version: str) -> Verdict | None:
        """The verdict of a version, or None before evaluation."""
        try:
            return Verdict.model_validate_json(
                self.blobs.get(f"{PREFIX}/verdicts/{version}.json").data
            )
        except BlobNotFound:
            return None

    # approvals ---------------------------------------------------------------
    def record_approval(self, approval: Approval) -> Approval:
        """Write a version's approval or rejection once; a second decision returns the first."""
        key = f"{PREFIX}/approvals/{approval.version}.json"
        self.get(approval.version)
        try:
            self.blobs.put(key, approval.model_dump_json(indent=2).encode(), if_generation_match=0)
        except PreconditionFailed:
            existing = self.approval(approval.version)
            assert existing is not None
            return existing
        return approval

    def approval(self, version: str) -> Approval | None:
        """The decision on a version's roll-out, or None while it waits."""
        try:
            blob = self.blobs.get(f"{PREFIX}/approvals/{version}.json")
        except BlobNotFound:
            return None
        return Approval.model_validate_json(blob.data)

    # pointers ---------------------------------------------------------------
    def _pointer(self, name: str) -> tuple[Pointer, int]:
        try:
            blob = self.blobs.get(f"{PREFIX}/{name}.json")
        except BlobNotFound:
            return Pointer(), 0
        return Pointer.model_validate_json(blob.data), blob.generation

    def champion(self) -> tuple[Pointer, int]:
        """The champion pointer and its generation (0 when there is none yet)."""
        return self._pointer("champion")

    def deployed(self) -> tuple[Pointer, int]:
        """The deployed pointer and its generation."""
        return self._pointer("deployed")

    def _move(
        self,
        name: str,
        version: str,
        expected_generation: int,
        *,
        by: str,
        reason: str,
        endpoint: str | None = None,
    ) -> Pointer:
        current, generation = self._pointer(name)
        if generation != expected_generation:
            raise PreconditionFailed(f"{name} changed since it was read (now {current.version!r})")
        change = PointerChange(
            version=version,
            previous=current.version,
            at=dt.datetime.now(dt.UTC),
            by=by,
            reason=reason,
        )
        updated = Pointer(
            version=version,
            endpoint=endpoint or current.endpoint,
            history=[*current.history, change],
        )
        self.blobs.put(
            f"{PREFIX}/{name}.json",
            updated.model_dump_json(indent=2).encode(),
            if_generation_match=expected_generation,
        )
        return updated

    def promote(self, version: str, expected_generation: int, *, by: str, reason: str) -> Pointer:
        """Make `version` champion if the pointer is still at `expected_generation`."""
        self.get(version)
        return self._move("champion", version, expected_generation, by=by, reason=reason)

    def mark_deployed(self, version: str, *, endpoint: str, by: str, reason: str) -> Pointer:
        """Record that `version` now serves at `endpoint` (retries on a concurrent change)."""
        self.get(version)
        for _ in range(10):
            current, generation = self.deployed()
            if current.version == version and current.endpoint == endpoint:
                return current
            try:
                return self._move(
                    "deployed", version, generation, by=by, reason=reason, endpoint=endpoint
                )
            except PreconditionFailed:
                continue
        raise PreconditionFailed("deployed pointer kept changing; gave up after 10 tries")

    # the guardrail's threshold override --------------------------------------
    def guardrail(self) -> tuple[Guardrail, int]:
        """The threshold override in force (if any), its history, and the blob generation."""
        try:
            blob = self.blobs.get(f"{PREFIX}/guardrail.json")
        except BlobNotFound:
            return Guardrail(), 0
        return Guardrail.model_validate_json(blob.data), blob.generation

    def set_override(
        self, override: ThresholdOverride | None, *, by: str, reason: str
    ) -> tuple[Guardrail, bool]:
        """Set (or with None clear) the override, once per cause: (guardrail, changed).

        A cause that already changed it (a redelivered breach) changes nothing; a concurrent
        writer makes this read and try again (compare-and-swap on the generation).
        """
        for _ in range(10):
            current, generation = self.guardrail()
            if current.changed_by(by):
                return current, False
            change = GuardrailChange(
                override=override, at=dt.datetime.now(dt.UTC), by=by, reason=reason
            )
            updated = Guardrail(override=override, history=[*current.history, change])
            try:
                self.blobs.put(
                    f"{PREFIX}/guardrail.json",
                    updated.model_dump_json(indent=2).encode(),
                    if_generation_match=generation,
                )
            except PreconditionFailed:
                continue
            return updated, True
        raise PreconditionFailed("guardrail kept changing; gave up after 10 tries")

    def override_for(self, version: str) -> ThresholdOverride | None:
        """The override replicas serving `version` must use now, or None (its own threshold)."""
        override = self.guardrail()[0].override
        return override if override is not None and override.applies_to(version) else None

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary for status displays."""
        champion, _ = self.champion()
        deployed, _ = self.deployed()
        return {
            "champion": champion.version,
            "deployed": deployed.version,
            "endpoint": deployed.endpoint,
            "versions": [json.loads(r.model_dump_json()) for r in self.versions()],
        }
