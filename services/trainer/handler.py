"""Trainer: dataset.ready → a candidate model, saved in a safe format with its digest →
model.trained."""

from __future__ import annotations

import hashlib
import json
import logging

from shared.bootstrap import Ports
from shared.errors import PermanentError
from shared.evaluation.scoring import batches
from shared.events import DatasetReady, Envelope, ModelTrained
from shared.matching import MatcherConfig, train_matcher
from shared.ports import PreconditionFailed
from shared.publishing import publish_answer
from shared.registry import ModelRecord

log = logging.getLogger(__name__)
SOURCE = "/services/trainer"
ARTIFACT_NAME = "model.zip"
# Bumped whenever the trainer's code changes what a given dataset trains into.
TRAINER_REVISION = "1"


def model_version(dataset_version: str, config: MatcherConfig) -> str:
    """Deterministic version: the same dataset and config always name the same model."""
    recipe = json.dumps(
        {"dataset": dataset_version, "config": config.to_dict(), "trainer": TRAINER_REVISION},
        sort_keys=True,
    )
    return "m-" + hashlib.sha256(recipe.encode()).hexdigest()[:12]


def train(event: Envelope, ports: Ports) -> str:
    """Handle dataset.ready; a version already trained is announced again, not retrained."""
    payload = event.payload()
    assert isinstance(payload, DatasetReady)
    manifest = ports.datasets.read_manifest(payload.dataset_uri)
    if manifest["version"] != payload.dataset_version:
        raise PermanentError(
            f"dataset at {payload.dataset_uri} is {manifest['version']}, the event names "
            f"{payload.dataset_version}: it was rebuilt since; "
            f"republish month.closed for {payload.month}"
        )
    config = MatcherConfig()
    version = model_version(payload.dataset_version, config)
    try:
        record = ports.registry.get(version)
        outcome = f"model {version} already trained; announced again"
    except KeyError:
        record = _train_new(ports, payload, manifest, config, version, event.id)
        outcome = f"trained {version} on {len(record.training_months)} months"

    answer = ModelTrained(
        month=payload.month,
        model_uri=record.model_uri,
        model_version=record.version,
        artifact_digest=record.artifact_digest,
        dataset_uri=record.dataset_uri,
        dataset_version=record.dataset_version,
        training_months=record.training_months,
        training_metrics=record.training_metrics,
        caused_by=event.id,
    )
    publish_answer(ports, event, answer, SOURCE)
    return outcome


def _train_new(
    ports: Ports,
    payload: DatasetReady,
    manifest: dict,
    config: MatcherConfig,
    version: str,
    cause_id: str,
) -> ModelRecord:
    data = ports.datasets.training_data(manifest)
    if data.transfers.empty:
        raise PermanentError(f"dataset {payload.dataset_version} has no training transfers")
    matcher = train_matcher(batches(data), config)
    artifact = matcher.to_bytes()
    key = f"models/{version}/{ARTIFACT_NAME}"
    try:
        ports.blobs.put(key, artifact, if_generation_match=0)
    except PreconditionFailed:
        # An earlier attempt (or a concurrent trainer) saved this version first: keep its bytes,
        # so the digest registered always belongs to the file on disk.
        artifact = ports.blobs.get(key).data
    record = ModelRecord(
        version=version,
        model_uri=ports.blobs.uri(key),
        artifact_digest=hashlib.sha256(artifact).hexdigest(),
        dataset_uri=payload.dataset_uri,
        dataset_version=payload.dataset_version,
        training_months=list(manifest["training_months"]),
        training_metrics={k: float(v) for k, v in matcher.training_metrics.items()},
        created_at=ports.clock(),
        caused_by=cause_id,
    )
    stored = ports.registry.register(record)
    log.info("trained %s", stored.version)
    return stored
