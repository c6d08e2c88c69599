"""The trainer's library: train a candidate on a dataset and store it, in process or in a job.

`train_and_store` is what the trainer handler runs in process and what the Vertex AI custom job
(entrypoints/vertex_job.py) runs remotely; both leave the artifact and a `TrainingResult` in
the blob store, which the handler then registers. Versions are derived from the dataset and
the config, so a retry or a redelivery trains into the same version.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from cashmatch.domain.errors import PermanentError
from cashmatch.domain.matching import MatcherConfig, train_matcher
from cashmatch.ports import BlobNotFound, BlobStore, PreconditionFailed
from cashmatch.service_layer.dataset_store import DatasetStore

ARTIFACT_NAME = "model.zip"
# The Vertex AI custom job's entry point.
JOB_MODULE = "cashmatch.entrypoints.vertex_job"
# Bumped whenever the trainer's code changes what a given dataset trains into.
TRAINER_REVISION = "1"


def model_version(dataset_version: str, config: MatcherConfig) -> str:
    """Deterministic version: the same dataset and config always name the same model."""
    recipe = json.dumps(
        {"dataset": dataset_version, "config": config.to_dict(), "trainer": TRAINER_REVISION},
        sort_keys=True,
    )
    return "m-" + hashlib.sha256(recipe.encode()).hexdigest()[:12]


class TrainingResult(BaseModel):
    """What one training run left in the blob store, beside its artifact."""

    model_config = ConfigDict(extra="forbid")

    model_version: str
    artifact_key: str
    artifact_digest: str
    dataset_version: str
    training_months: list[str]
    training_metrics: dict[str, float]


def artifact_key(version: str) -> str:
    """Blob key of a version's model file."""
    return f"models/{version}/{ARTIFACT_NAME}"


def result_key(version: str) -> str:
    """Blob key of a version's training result (kept out of models/, which holds artifacts)."""
    return f"training/{version}.json"


def check_manifest(
    manifest: dict[str, Any], dataset_uri: str, dataset_version: str, month: str = "its month"
) -> None:
    """The dataset must still be the one the event named; a rebuilt one is not trained on."""
    if manifest["version"] != dataset_version:
        raise PermanentError(
            f"dataset at {dataset_uri} is {manifest['version']}, the event names "
            f"{dataset_version}: it was rebuilt since; republish month.closed for {month}"
        )


def job_command(dataset_uri: str, dataset_version: str, version: str) -> tuple[str, ...]:
    """What a remote job runs in the trainer's image to train `version` (vertex_job.py)."""
    return (
        "python",
        "-m",
        JOB_MODULE,
        "--dataset-uri",
        dataset_uri,
        "--dataset-version",
        dataset_version,
        "--model-version",
        version,
    )


def train_and_store(
    blobs: BlobStore,
    datasets: DatasetStore,
    *,
    dataset_uri: str,
    dataset_version: str,
    version: str,
    config: MatcherConfig,
) -> TrainingResult:
    """Train on the dataset and write the artifact, then its result (digest, metrics).

    Both writes are "only if absent": a second run (a retry, a concurrent trainer, a job and
    its redelivery) keeps the first bytes, and the result always names the digest of the file
    in the store. The result is written last, so its presence means the artifact is complete.
    Used by the in-process path and by the Vertex AI job alike.
    """
    manifest = datasets.read_manifest(dataset_uri)
    check_manifest(manifest, dataset_uri, dataset_version)
    # Month by month from the store (each read when training gets to it), not the history
    # concatenated: the trainer's memory follows the month, not the twelve of them.
    months = datasets.training_months(manifest)
    if not any(m.n_transfers for m in months):
        raise PermanentError(f"dataset {dataset_version} has no training transfers")
    matcher = train_matcher(months, config)
    artifact = matcher.to_bytes()
    key = artifact_key(version)
    try:
        blobs.put(key, artifact, if_generation_match=0)
    except PreconditionFailed:
        # An earlier attempt (or a concurrent trainer) saved this version first: keep its bytes,
        # so the digest registered always belongs to the file on disk.
        artifact = blobs.get(key).data
    result = TrainingResult(
        model_version=version,
        artifact_key=key,
        artifact_digest=hashlib.sha256(artifact).hexdigest(),
        dataset_version=dataset_version,
        training_months=list(manifest["training_months"]),
        training_metrics={k: float(v) for k, v in matcher.training_metrics.items()},
    )
    try:
        blobs.put(
            result_key(version),
            result.model_dump_json(indent=2).encode(),
            if_generation_match=0,
        )
    except PreconditionFailed:
        return read_result(blobs, version)
    return result


def read_result(blobs: BlobStore, version: str) -> TrainingResult:
    """A finished run's result, after checking that the artifact is the one it names."""
    try:
        result = TrainingResult.model_validate_json(blobs.get(result_key(version)).data)
        artifact = blobs.get(result.artifact_key).data
    except BlobNotFound as exc:
        raise RuntimeError(f"training of {version} left no complete result: {exc}") from None
    digest = hashlib.sha256(artifact).hexdigest()
    if digest != result.artifact_digest or result.model_version != version:
        raise PermanentError(
            f"training result of {version} names {result.model_version} / "
            f"{result.artifact_digest[:12]}…, the artifact's sha256 is {digest[:12]}…"
        )
    return result
