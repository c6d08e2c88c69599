"""Vertex AI Model Registry mirroring: upload once per version, move the champion alias, and
the registry hook that keeps it in step (a failed mirror fails the verdict, not the truth)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest

from cashmatch.adapters.gcp.vertex import model_client
from cashmatch.adapters.gcp.vertex_registry import VertexModelCatalog, artifact_folder
from cashmatch.adapters.local.blobstore import DirectoryBlobStore
from cashmatch.domain.model_records import ModelRecord, Verdict
from cashmatch.service_layer.model_catalog import MirroredRegistry
from tests.fakes.models import model_record
from tests.integration.gcp.google_api_recorder import FakeVertexModels

pytestmark = pytest.mark.integration
from google.cloud import aiplatform_v1  # noqa: E402


@pytest.fixture
def models():
    fake = FakeVertexModels()
    fake.recorder.start()
    yield fake
    fake.recorder.stop()


def catalog(models: FakeVertexModels) -> VertexModelCatalog:
    return VertexModelCatalog(
        model_client(models.recorder.url),
        project="test-project",
        region="europe-west1",
        model_id="cashmatch-matcher",
        serving_image="europe-west1-docker.pkg.dev/test-project/cashmatch/matcher:1",
    )


def record(version: str, uri: str | None = None) -> ModelRecord:
    return model_record(
        version,
        model_uri=uri or f"gs://cashmatch-test/models/{version}/model.zip",
        artifact_digest=hashlib.sha256(version.encode()).hexdigest(),
        dataset_uri="gs://cashmatch-test/datasets/manifests/2025-03.json",
        dataset_version="ds-2025-03-abc",
        training_months=["2025-02", "2025-03"],
        training_metrics={"auto_rate@99": 0.9},
    )


def test_a_champion_is_uploaded_once_and_the_alias_follows_the_next_one(models):
    vertex = catalog(models)
    first = vertex.publish_champion(record("m-first"))
    assert first == "projects/test-project/locations/europe-west1/models/cashmatch-matcher@1"
    assert vertex.publish_champion(record("m-first")) == first
    assert len(models.uploads()) == 1, "the second publish only looked"
    assert models.alias_holder("cashmatch-matcher", "champion") == "1"

    second = vertex.publish_champion(record("m-second"))
    assert second.endswith("@2")
    upload = models.uploads()[1]
    request = aiplatform_v1.UploadModelRequest.from_json(json.dumps(upload.body))
    assert request.parent_model.endswith("/models/cashmatch-matcher")
    assert request.model_id == ""
    assert request.model.artifact_uri == "gs://cashmatch-test/models/m-second/"
    assert request.model.container_spec.health_route == "/v1/health"
    merges = [
        (
            m.path.rsplit("@", 1)[1],
            aiplatform_v1.MergeVersionAliasesRequest.from_json(json.dumps(m.body)).version_aliases,
        )
        for m in models.merges()
    ]
    assert merges[-2:] == [
        ("1:mergeVersionAliases", ["-champion"]),
        ("2:mergeVersionAliases", ["champion"]),
    ]
    assert models.alias_holder("cashmatch-matcher", "champion") == "2"
    assert models.alias_holder("cashmatch-matcher", "default") == "1"

    # A rollback to the first champion moves the alias back without uploading it again.
    assert vertex.publish_champion(record("m-first")) == first
    assert len(models.uploads()) == 2
    assert models.alias_holder("cashmatch-matcher", "champion") == "1"


def test_versions_become_valid_labels_and_only_gs_artifacts_are_accepted(models):
    vertex = catalog(models)
    vertex.publish_champion(record("2025-03.1"))
    (upload,) = models.uploads()
    assert upload.body["model"]["labels"]["cashmatch_version"] == "2025-03_1"
    assert vertex.find_version("2025-03.1") == "1"
    assert artifact_folder("gs://b/models/v/model.zip") == "gs://b/models/v/"
    with pytest.raises(ValueError, match="needs a gs:// artifact"):
        vertex.publish_champion(record("m-x", uri="file:///tmp/models/m-x/model.zip"))


class FlakyCatalog:
    """Fails the first `failures` publishes, then records each one."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.published: list[str] = []

    def publish_champion(self, record: ModelRecord) -> str:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("Vertex AI unavailable")
        self.published.append(record.version)
        return f"catalog/{record.version}"


def verdict(version: str, passed: bool = True) -> Verdict:
    return Verdict(
        version=version,
        passed=passed,
        reasons=["test"],
        metrics={},
        baseline_metrics={},
        champion_version=None,
        champion_metrics=None,
        decided_at=dt.datetime(2025, 4, 1, tzinfo=dt.UTC),
        event_id="verdict-1",
        caused_by="event-1",
    )


def test_a_failed_mirror_keeps_the_verdict_unwritten_until_a_retry_mirrors(tmp_path):
    flaky = FlakyCatalog(failures=2)
    registry = MirroredRegistry(DirectoryBlobStore(tmp_path), flaky)
    registry.register(record("m-first", uri="gs://b/models/m-first/model.zip"))

    # The evaluator's promotion: the pointer moves (the registry is the truth), the mirror fails.
    with pytest.raises(RuntimeError, match="unavailable"):
        registry.promote("m-first", 0, by="event-1", reason="first model")
    assert registry.champion()[0].version == "m-first"
    # Its retry finds the champion moved and writes the verdict: mirrored first, or not written.
    with pytest.raises(RuntimeError, match="unavailable"):
        registry.record_verdict(verdict("m-first"))
    assert registry.verdict("m-first") is None
    registry.record_verdict(verdict("m-first"))
    assert flaky.published == ["m-first"]
    assert registry.verdict("m-first") is not None

    # A rejected verdict, or one for a version that is not champion, mirrors nothing.
    registry.register(record("m-loser", uri="gs://b/models/m-loser/model.zip"))
    registry.record_verdict(verdict("m-loser", passed=False))
    assert flaky.published == ["m-first"]
