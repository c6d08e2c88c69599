"""Registry records and registered artifacts for tests: one place that knows every field a
ModelRecord needs, so a test names only the fields it asserts on."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from cashmatch.domain.model_records import ModelRecord
from cashmatch.service_layer.registry import ModelRegistry


def model_record(version: str, **fields: Any) -> ModelRecord:
    """A valid record of `version`; `fields` override the placeholders."""
    values: dict[str, Any] = {
        "version": version,
        "model_uri": f"file:///models/{version}",
        "artifact_digest": "0" * 64,
        "dataset_uri": "file:///datasets/test",
        "dataset_version": "ds-test",
        "training_months": ["2025-01", "2025-02"],
        "training_metrics": {},
        "created_at": dt.datetime(2025, 6, 1, tzinfo=dt.UTC),
        "caused_by": "test",
    }
    return ModelRecord(**{**values, **fields})


def register_artifact(
    registry: ModelRegistry,
    version: str,
    artifact: bytes,
    *,
    digest: str | None = None,
    key: str | None = None,
    **fields: Any,
) -> ModelRecord:
    """Store `artifact` in the registry's blob store and register it; `digest` other than the
    artifact's own makes a tampered record."""
    key = key or f"models/{version}/model.skops.zip"
    registry.blobs.put(key, artifact)
    record = model_record(
        version,
        model_uri=registry.blobs.uri(key),
        artifact_digest=digest or hashlib.sha256(artifact).hexdigest(),
        **fields,
    )
    return registry.register(record)
