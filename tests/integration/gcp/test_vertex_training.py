"""Vertex AI training and Model Registry mirroring through the real trainer and evaluator.

google-cloud-aiplatform's JobServiceClient / ModelServiceClient talk REST to local recorders
(tests/integration/gcp/google_api_recorder.py). A created custom job really runs: the recorder
starts the job's own command (`python -m cashmatch.entrypoints.vertex_job ...`) with the job's own
environment in a subprocess, against a Cloud Storage bucket of the session's emulator, and
reports SUCCEEDED or FAILED from its exit status.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from cashmatch.adapters.gcp.blobstore import GcsBlobStore
from cashmatch.adapters.gcp.vertex import job_client, model_client
from cashmatch.adapters.gcp.vertex_registry import VertexModelCatalog
from cashmatch.adapters.gcp.vertex_training import (
    TrainingJobFailed,
    TrainingStillRunning,
    VertexTraining,
)
from cashmatch.bootstrap import assemble
from cashmatch.domain.events import MonthClosed, make_event, parse_event
from cashmatch.domain.machine_types import parse_machine_types
from cashmatch.entrypoints.service_table import HANDLERS
from cashmatch.entrypoints.vertex_job import main as job_main
from cashmatch.ports import TrainingJob
from cashmatch.service_layer.dispatch import handle_bytes, run_until_idle
from cashmatch.service_layer.publishing import publish_event
from cashmatch.service_layer.training import job_command, result_key
from tests.integration.gcp.google_api_recorder import FakeVertexJobs, FakeVertexModels

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
from google.cloud import aiplatform_v1  # noqa: E402


@pytest.fixture
def bucket(gcs_emulator) -> str:
    name = f"vertex-{uuid.uuid4().hex[:12]}"
    gcs_emulator.client().create_bucket(name)
    return name


def run_job_command(gcs_emulator):
    """What a Vertex AI worker does with the job: run its command with its environment."""

    def execute(job: dict) -> tuple[int, str]:
        spec = job["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CASHMATCH_")}
        env.update({e["name"]: e["value"] for e in spec.get("env", [])})
        env.update(STORAGE_EMULATOR_HOST=gcs_emulator.host, PYTHONPATH=str(REPO))
        command = [sys.executable if c == "python" else c for c in spec["command"]]
        done = subprocess.run(
            command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300, check=False
        )
        return done.returncode, done.stdout + done.stderr

    return execute


def job_env(bucket: str) -> dict[str, str]:
    return {
        "CASHMATCH_STACK": "gcp",
        "CASHMATCH_PROJECT": "test-project",
        "CASHMATCH_REGION": "europe-west1",
        "CASHMATCH_BUCKET": bucket,
        "CASHMATCH_WAREHOUSE": "test-project.cashmatch",
    }


def vertex_training(jobs: FakeVertexJobs, bucket: str, **options) -> VertexTraining:
    options.setdefault("poll_s", 0.05)
    options.setdefault("wait_s", 240.0)
    return VertexTraining(
        job_client(jobs.recorder.url),
        project="test-project",
        region="europe-west1",
        image="europe-west1-docker.pkg.dev/test-project/cashmatch/trainer:1",
        machine_types=parse_machine_types("<=1000000:n1-standard-4,*:n1-highmem-16"),
        service_account="cashmatch-train-job@test-project.iam.gserviceaccount.com",
        env=job_env(bucket),
        **options,
    )


@pytest.fixture
def vertex_models():
    fake = FakeVertexModels()
    fake.recorder.start()
    yield fake
    fake.recorder.stop()


def events_on(ports, topic: str) -> list:
    ids = dict.fromkeys(r.message_id for r in ports.bus.log(topic=topic, limit=500))
    return [parse_event(ports.bus.get_message(i)[1]) for i in ids]


def test_a_month_trained_on_vertex_and_its_champion_mirrored(
    gcs_emulator, bucket, make_ports, small_warehouse, vertex_models
):
    jobs = FakeVertexJobs(run_job_command(gcs_emulator))
    jobs.recorder.start()
    try:
        local = make_ports(warehouse=str(small_warehouse))
        blobs = GcsBlobStore(gcs_emulator.client(), bucket)
        catalog = VertexModelCatalog(
            model_client(vertex_models.recorder.url),
            project="test-project",
            region="europe-west1",
            model_id="cashmatch-matcher",
            serving_image="europe-west1-docker.pkg.dev/test-project/cashmatch/matcher:1",
        )
        training = vertex_training(jobs, bucket)
        ports = assemble(
            local.settings,
            local.warehouse,
            blobs,
            local.bus,
            None,
            training=training,
            catalog=catalog,
        )

        publish_event(ports.bus, make_event(MonthClosed(month="2025-03"), source="/test"))
        run_until_idle(ports, HANDLERS, timeout_s=300)

        (ready,) = events_on(ports, "dataset.ready")
        (trained,) = events_on(ports, "model.trained")
        version = trained.data["model_version"]
        # One custom job, exactly the API's message, running the job module in the image.
        (create,) = jobs.creates()
        job = aiplatform_v1.CustomJob.from_json(json.dumps(create.body))
        (pool,) = job.job_spec.worker_pool_specs
        # the month is small: the first row of the table picks its machine
        assert pool.machine_spec.machine_type == "n1-standard-4"
        assert pool.replica_count == 1
        assert pool.container_spec.image_uri.endswith("/trainer:1")
        assert list(pool.container_spec.command) == list(
            job_command(ready.data["dataset_uri"], ready.data["dataset_version"], version)
        )
        assert {e.name: e.value for e in pool.container_spec.env} == job_env(bucket)
        assert job.job_spec.service_account.startswith("cashmatch-train-job@")
        assert job.labels["cashmatch_version"] == version
        # The job wrote the artifact and its result; the trainer registered exactly those.
        record = ports.registry.get(version)
        assert record.model_uri == f"gs://{bucket}/models/{version}/model.zip"
        artifact = blobs.get(f"models/{version}/model.zip").data
        assert record.artifact_digest == hashlib.sha256(artifact).hexdigest()
        result = json.loads(blobs.get(result_key(version)).data)
        assert result["artifact_digest"] == record.artifact_digest
        assert record.training_metrics == trained.data["training_metrics"] != {}

        # The first model passed the floors, became champion, and is in Vertex AI's registry.
        assert events_on(ports, "evaluation.passed"), events_on(ports, "evaluation.rejected")
        assert ports.registry.champion()[0].version == version
        (upload,) = vertex_models.uploads()
        request = aiplatform_v1.UploadModelRequest.from_json(json.dumps(upload.body))
        assert request.model_id == "cashmatch-matcher"
        assert request.model.artifact_uri == f"gs://{bucket}/models/{version}/"
        assert request.model.labels["cashmatch_version"] == version
        assert request.model.labels["cashmatch_sha256"] == record.artifact_digest[:63]
        assert record.artifact_digest in request.model.version_description
        assert request.model.container_spec.image_uri.endswith("/matcher:1")
        assert vertex_models.alias_holder("cashmatch-matcher", "champion") == "1"

        # Redelivering the chain's events trains nothing and uploads nothing again.
        for service, topic in (("trainer", "dataset.ready"), ("evaluator", "model.trained")):
            (event,) = events_on(ports, topic)
            handle_bytes(service, HANDLERS[service], event.to_bytes(), ports)
        assert len(jobs.creates()) == 1
        assert len(vertex_models.uploads()) == 1
        # A job already done for the version is found by its label, not submitted again.
        again = TrainingJob(
            model_version=version,
            dataset_uri=ready.data["dataset_uri"],
            dataset_version=ready.data["dataset_version"],
            command=tuple(pool.container_spec.command),
        )
        assert training.run(again) == next(iter(jobs.jobs))
        assert len(jobs.creates()) == 1
    finally:
        jobs.recorder.stop()


def _job(version: str = "m-abc") -> TrainingJob:
    return TrainingJob(
        model_version=version,
        dataset_uri="gs://b/datasets/manifests/2025-03.json",
        dataset_version="ds-2025-03-x",
        command=("python", "-m", "cashmatch.entrypoints.vertex_job"),
    )


def test_a_failed_job_is_an_error_with_its_message_and_the_retry_submits_anew(bucket):
    jobs = FakeVertexJobs(lambda job: (1, "Traceback ...\nValueError: boom"))
    jobs.recorder.start()
    try:
        training = vertex_training(jobs, bucket)
        with pytest.raises(TrainingJobFailed, match=r"(?s)JOB_STATE_FAILED: exit status 1: .*boom"):
            training.run(_job())
        with pytest.raises(TrainingJobFailed):
            training.run(_job())
        assert len(jobs.creates()) == 2, "a failed job is not waited for again"
    finally:
        jobs.recorder.stop()


def test_a_long_job_outlives_one_delivery_and_the_next_one_waits_for_it(bucket):
    release = threading.Event()

    def slow(job: dict) -> tuple[int, str]:
        release.wait(30)
        return 0, "done"

    jobs = FakeVertexJobs(slow)
    jobs.recorder.start()
    try:
        training = vertex_training(jobs, bucket, wait_s=0.3)
        with pytest.raises(TrainingStillRunning, match="still JOB_STATE_RUNNING"):
            training.run(_job())
        release.set()
        name = vertex_training(jobs, bucket).run(_job())
        assert len(jobs.creates()) == 1
        assert name == next(iter(jobs.jobs))
    finally:
        release.set()
        jobs.recorder.stop()


def test_the_job_refuses_a_version_its_own_trainer_would_not_produce(caplog):
    code = job_main(
        [
            "--dataset-uri",
            "gs://b/datasets/manifests/2025-03.json",
            "--dataset-version",
            "ds-2025-03-x",
            "--model-version",
            "m-not-this-one",
        ]
    )
    assert code == 2
    assert "not the trainer's" in caplog.text
