"""Trainer: dataset.ready → a candidate model, saved in a safe format with its digest →
model.trained."""

from __future__ import annotations

import logging

from cashmatch.domain.events import DatasetReady, Envelope, ModelTrained
from cashmatch.domain.matching import MatcherConfig
from cashmatch.domain.model_records import ModelRecord
from cashmatch.ports import TrainingJob
from cashmatch.service_layer.context import Ports
from cashmatch.service_layer.publishing import publish_answer
from cashmatch.service_layer.training import (
    check_manifest,
    job_command,
    model_version,
    read_result,
    train_and_store,
)

log = logging.getLogger(__name__)
SOURCE = "/services/trainer"


def train(event: Envelope, ports: Ports) -> str:
    """Handle dataset.ready; a version already trained is announced again, not retrained."""
    payload = event.payload()
    assert isinstance(payload, DatasetReady)
    manifest = ports.datasets.read_manifest(payload.dataset_uri)
    check_manifest(manifest, payload.dataset_uri, payload.dataset_version, payload.month)
    config = MatcherConfig()
    version = model_version(payload.dataset_version, config)
    try:
        record = ports.registry.get(version)
        outcome = f"model {version} already trained; announced again"
    except KeyError:
        record = _train_new(ports, payload, config, version, event.id)
        where = "in process" if ports.training is None else "in a remote job"
        outcome = f"trained {version} {where} on {len(record.training_months)} months"

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
    config: MatcherConfig,
    version: str,
    cause_id: str,
) -> ModelRecord:
    if ports.training is None:
        result = train_and_store(
            ports.blobs,
            ports.datasets,
            dataset_uri=payload.dataset_uri,
            dataset_version=payload.dataset_version,
            version=version,
            config=config,
        )
    else:
        job = TrainingJob(
            model_version=version,
            dataset_uri=payload.dataset_uri,
            dataset_version=payload.dataset_version,
            command=job_command(payload.dataset_uri, payload.dataset_version, version),
            month_transfers=payload.rows.get("month_transfers", 0),
        )
        name = ports.training.run(job)
        result = read_result(ports.blobs, version)
        log.info("job %s trained %s", name, version)
    record = ModelRecord(
        version=version,
        model_uri=ports.blobs.uri(result.artifact_key),
        artifact_digest=result.artifact_digest,
        dataset_uri=payload.dataset_uri,
        dataset_version=payload.dataset_version,
        training_months=result.training_months,
        training_metrics=result.training_metrics,
        created_at=ports.clock(),
        caused_by=cause_id,
    )
    stored = ports.registry.register(record)
    log.info("trained %s", stored.version)
    return stored
