"""Cloud Build request for the serving image: the archive, and the body against the API's types."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import tarfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from cashmatch.adapters.gcp.cloud_build import (
    build_request,
    image_tag,
    package_source,
    submit_build,
)
from cashmatch.adapters.local.blobstore import DirectoryBlobStore
from cashmatch.domain.model_records import ModelRecord

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
from google.cloud.devtools import cloudbuild_v1 as cloudbuild  # noqa: E402


@pytest.fixture
def stored(tmp_path):
    blobs = DirectoryBlobStore(tmp_path / "blobs")
    artifact = b"model bytes"
    blobs.put("models/2025-03.1/model.skops.zip", artifact)
    record = ModelRecord(
        version="2025-03.1",
        model_uri=blobs.uri("models/2025-03.1/model.skops.zip"),
        artifact_digest=hashlib.sha256(artifact).hexdigest(),
        dataset_uri="gs://bucket/datasets/2025-03",
        dataset_version="2025-03",
        training_months=["2025-01", "2025-02", "2025-03"],
        training_metrics={"auto_rate@99": 0.7},
        created_at=dt.datetime(2025, 4, 1, tzinfo=dt.UTC),
        caused_by="event-1",
    )
    return blobs, record, artifact


def test_the_archive_holds_the_code_the_model_and_its_record(stored):
    blobs, record, artifact = stored
    key = package_source(blobs, record, REPO)
    assert key == "builds/2025-03.1/source.tar.gz"
    with tarfile.open(fileobj=io.BytesIO(blobs.get(key).data), mode="r:gz") as archive:
        names = set(archive.getnames())
        model, packed_record = (
            archive.extractfile(name) for name in ("model/model.skops.zip", "model/record.json")
        )
        assert model is not None and packed_record is not None
        assert model.read() == artifact
        packed = json.loads(packed_record.read())
    assert packed["artifact_digest"] == record.artifact_digest
    assert {
        "pyproject.toml",
        "infra/serving.Dockerfile",
        "shared/src/cashmatch/entrypoints/matcher/app.py",
    } <= names
    assert not any("__pycache__" in n or n.startswith("tests/") for n in names)
    first = blobs.get(key).data
    time.sleep(1.1)  # gzip headers carry a time in whole seconds
    assert package_source(blobs, record, REPO) == key
    assert blobs.get(key).data == first  # same inputs, same bytes


def test_the_request_is_a_valid_cloud_build_message():
    body = build_request(
        bucket="cashmatch-prod",
        source_object="builds/2025-03.1/source.tar.gz",
        image="europe-west1-docker.pkg.dev/proj/cashmatch/matcher",
        version="2025-03.1",
        service_account="projects/proj/serviceAccounts/build@proj.iam.gserviceaccount.com",
    )
    # Unknown or misspelt fields make from_json fail: the body is exactly the API's shape.
    build = cloudbuild.Build.from_json(json.dumps(body))
    assert build.source.storage_source.bucket == "cashmatch-prod"
    assert build.source.storage_source.object_ == "builds/2025-03.1/source.tar.gz"
    assert build.steps[0].name == "gcr.io/cloud-builders/docker"
    image = "europe-west1-docker.pkg.dev/proj/cashmatch/matcher:2025-03.1"
    assert list(build.images) == [image]
    assert ["--tag", image] == list(build.steps[0].args[3:5])
    assert "infra/serving.Dockerfile" in build.steps[0].args
    assert build.timeout.total_seconds() == 1200
    assert build.options.logging == cloudbuild.BuildOptions.LoggingMode.CLOUD_LOGGING_ONLY


def test_versions_become_valid_tags_and_bad_input_is_refused():
    assert image_tag("2025-03.1") == "2025-03.1"
    assert image_tag("a/b c") == "a-b-c"
    with pytest.raises(ValueError):
        build_request(bucket="", source_object="x", image="i", version="v")


def test_submit_sends_the_message_and_returns_the_build_id():
    sent: dict[str, object] = {}

    class FakeClient:
        def create_build(self, project_id, build):
            sent.update(project_id=project_id, build=build)
            return SimpleNamespace(metadata=SimpleNamespace(build=SimpleNamespace(id="b-42")))

    body = build_request(bucket="b", source_object="o.tar.gz", image="r/matcher", version="v1")
    assert submit_build(FakeClient(), "proj", body) == "b-42"
    assert sent["project_id"] == "proj"
    assert isinstance(sent["build"], cloudbuild.Build)
    assert list(sent["build"].images) == ["r/matcher:v1"]
