"""Loading a registered model: the artifact's digest is verified before a byte is parsed."""

from __future__ import annotations

import hashlib

from cashmatch.domain.matching import TrainedMatcher
from cashmatch.domain.model_records import ModelRecord
from cashmatch.ports import BlobStore


class ArtifactDigestMismatch(Exception):
    """The model file is not the one the registry recorded (corrupt or tampered)."""


def load_verified(blobs: BlobStore, record: ModelRecord) -> TrainedMatcher:
    """Read the artifact, check its sha256 against the registry, then deserialize it safely."""
    data = blobs.get(blobs.key_from_uri(record.model_uri)).data
    actual = hashlib.sha256(data).hexdigest()
    if actual != record.artifact_digest:
        raise ArtifactDigestMismatch(
            f"model {record.version}: artifact sha256 {actual[:12]}… does not match the "
            f"registered {record.artifact_digest[:12]}…; refusing to load it"
        )
    return TrainedMatcher.from_bytes(data)
