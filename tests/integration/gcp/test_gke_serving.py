"""GKE serving: the RayService patch, the Cloud Build it may need, and the wait for the version.

The Kubernetes API (with KubeRay and the matcher behind it) and Cloud Build are local recorders
on 127.0.0.1 (tests/integration/gcp/google_api_recorder.py); the Cloud Build request goes
through google-cloud-build's own REST transport and is parsed back with its Build type. The
blob store is Cloud Storage (the session's emulator), since Cloud Build reads gs:// sources.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import tarfile
import uuid
from pathlib import Path

import pytest
import yaml

from cashmatch.adapters.gcp.cloud_build import BuildFailed, CloudBuildImages, code_digest
from cashmatch.adapters.gcp.gke_serving import (
    CODE_ANNOTATION,
    ArtifactRefused,
    GkeRayServing,
    KubeApi,
    KubeApiRefused,
    RolloutFailed,
)
from cashmatch.domain.errors import PermanentError
from cashmatch.domain.events import EvaluationPassed, make_event
from cashmatch.domain.model_records import ModelRecord
from cashmatch.entrypoints.cli.serving import roll_back
from cashmatch.service_layer.handlers.deployer import deploy
from cashmatch.service_layer.registry import ModelRegistry
from cashmatch.settings import Settings
from tests.fakes.models import register_artifact
from tests.integration.gcp.google_api_recorder import FakeCloudBuild, FakeKube

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
REPOSITORY = "europe-west1-docker.pkg.dev/test-project/cashmatch/matcher"
from google.cloud.devtools import cloudbuild_v1 as cloudbuild  # noqa: E402


@pytest.fixture
def kube():
    fake = FakeKube()
    fake.recorder.start()
    yield fake
    fake.recorder.stop()


@pytest.fixture
def builds():
    fake = FakeCloudBuild()
    fake.recorder.start()
    yield fake
    fake.recorder.stop()


@pytest.fixture
def registry(gcs_store):
    return ModelRegistry(gcs_store)


def register(registry: ModelRegistry, version: str) -> ModelRecord:
    return register_artifact(
        registry,
        version,
        f"model {version}".encode(),
        key=f"models/{version}/model.zip",
        dataset_uri=registry.blobs.uri("datasets/manifests/2025-04.json"),
        dataset_version="ds-2025-04",
        training_months=["2025-03", "2025-04"],
        training_metrics={"auto_rate@99": 0.8},
    )


def serving(kube, registry, builds=None, *, build="never", **options) -> GkeRayServing:
    api = KubeApi(kube.recorder.url, lambda: "token-123")
    images = None
    if builds is not None:
        from google.auth.credentials import AnonymousCredentials

        client = cloudbuild.CloudBuildClient(
            transport="rest",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": builds.recorder.url},
        )
        images = CloudBuildImages(
            client,
            registry.blobs,
            project="test-project",
            repository=REPOSITORY,
            code_root=REPO,
            service_account="cashmatch-build@test-project.iam.gserviceaccount.com",
            poll_s=0.01,
        )
    options.setdefault("poll_s", 0.01)
    # Generous: a roll-out that should succeed waits for the version's answers, not the clock.
    options.setdefault("timeout_s", 120.0)
    return GkeRayServing(
        api,
        registry.blobs,
        namespace=kube.namespace,
        name=kube.name,
        images=images,
        build=build,
        code_root=REPO if images is not None else None,
        **options,
    )


def serve_config(patch_body) -> dict:
    return yaml.safe_load(patch_body["spec"]["serveConfigV2"])


def test_a_roll_out_patches_only_the_user_config_and_waits_for_the_version(kube, registry):
    record = register(registry, "m-new")
    original = yaml.safe_load(kube.object["spec"]["serveConfigV2"])
    gke = serving(kube, registry)

    endpoint = gke.roll_out(record)

    assert endpoint == "http://cashmatch-matcher-serve-svc.default.svc.cluster.local:8000"
    (patch,) = kube.patches()
    assert patch.headers["authorization"] == "Bearer token-123"
    assert patch.headers["content-type"] == "application/merge-patch+json"
    # Only the Serve config (and the precondition and a note) change: no image, no new cluster.
    assert set(patch.body) == {"metadata", "spec"}
    assert set(patch.body["spec"]) == {"serveConfigV2"}
    assert patch.body["metadata"]["resourceVersion"] == "100"
    config = serve_config(patch.body)
    deployment = config["applications"][0]["deployments"][0]
    assert deployment["user_config"] == {"model_version": "m-new", "fallback_version": "2025-03.1"}
    deployment["user_config"] = original["applications"][0]["deployments"][0]["user_config"]
    assert config == original, "nothing else in serveConfigV2 changed"
    # It waited for the app to answer with the version (several answers in a row).
    assert kube.serving == "m-new"
    model_calls = kube.recorder.calls("GET", r"/api/v1/.*/proxy/v1/model")
    assert len(model_calls) >= 3 + kube.answers_before_switch
    assert gke.model_info()["version"] == "m-new"


def test_rolling_out_the_served_version_again_changes_nothing(kube, registry):
    record = register(registry, "m-new")
    gke = serving(kube, registry)
    gke.roll_out(record)
    generation = kube.object["metadata"]["generation"]
    gke.roll_out(record)
    assert kube.user_config() == {"model_version": "m-new", "fallback_version": "2025-03.1"}
    assert kube.object["metadata"]["generation"] == generation, "the spec did not change"


def test_a_concurrent_change_is_read_again_and_patched_once_more(kube, registry):
    record = register(registry, "m-new")
    kube.conflicts_to_inject = 1
    serving(kube, registry).roll_out(record)
    first, second = kube.patches()
    assert first.body["metadata"]["resourceVersion"] == "100"
    assert second.body["metadata"]["resourceVersion"] == "101"
    assert kube.user_config()["model_version"] == "m-new"


def test_changed_serving_code_is_built_first_and_the_new_image_rolled_out(kube, builds, registry):
    record = register(registry, "m-new")
    gke = serving(kube, registry, builds, build="auto")

    gke.roll_out(record)

    (create,) = builds.creates()
    # The request body is exactly Cloud Build's message (from_json fails on unknown fields).
    build = cloudbuild.Build.from_json(json.dumps(create.body))
    code = code_digest(REPO)
    image = f"{REPOSITORY}:m-new-code-{code[:12]}"
    assert list(build.images) == [image]
    assert f"code-{code[:12]}" in build.tags and "model-m-new" in build.tags
    assert build.service_account == (
        "projects/-/serviceAccounts/cashmatch-build@test-project.iam.gserviceaccount.com"
    )
    # The source archive is in the bucket the request names, with the code and the model.
    source = build.source.storage_source
    assert source.bucket == registry.blobs.bucket_name
    archive = registry.blobs.get(
        registry.blobs.key_from_uri(f"gs://{source.bucket}/{source.object_}")
    )
    with tarfile.open(fileobj=io.BytesIO(archive.data), mode="r:gz") as tar:
        names = set(tar.getnames())
    assert {
        "infra/serving.Dockerfile",
        "shared/src/cashmatch/entrypoints/matcher/app.py",
        "model/record.json",
    } <= names
    # It waited for the build (WORKING, then SUCCESS) before patching.
    gets = builds.recorder.calls("GET", r"/v1/projects/test-project/builds/b-\d+")
    assert len(gets) == 2
    (patch,) = kube.patches()
    assert kube.recorder.requests.index(patch) > 0
    cluster = patch.body["spec"]["rayClusterConfig"]
    assert cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] == image
    workers = cluster["workerGroupSpecs"]
    assert [g["template"]["spec"]["containers"][0]["image"] for g in workers] == [image]
    # The rest of each pod spec went back unchanged (a merge patch replaces lists whole).
    assert workers[0]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"]
    assert patch.body["metadata"]["annotations"][CODE_ANNOTATION] == code

    # The same code again: no build, only the user_config.
    gke.roll_out(register(registry, "m-newer"))
    assert len(builds.creates()) == 1
    assert set(kube.patches()[-1].body["spec"]) == {"serveConfigV2"}
    assert kube.user_config() == {"model_version": "m-newer", "fallback_version": "m-new"}


def test_a_build_still_running_from_an_earlier_try_is_awaited_not_started_again(
    kube, builds, registry
):
    record = register(registry, "m-new")
    code = code_digest(REPO)
    running = builds.add_build(
        ["cashmatch", "matcher", "model-m-new", f"code-{code[:12]}"],
        "WORKING",
        statuses=["WORKING", "SUCCESS"],
    )
    serving(kube, registry, builds, build="always").roll_out(record)
    assert builds.creates() == []
    assert builds.builds[running]["status"] == "SUCCESS"
    assert kube.user_config()["model_version"] == "m-new"


def test_a_failed_build_patches_nothing(kube, builds, registry):
    record = register(registry, "m-new")
    builds.statuses = ["WORKING", "FAILURE"]
    with pytest.raises(BuildFailed, match="FAILURE"):
        serving(kube, registry, builds, build="always").roll_out(record)
    assert kube.patches() == []


def test_no_answer_in_time_is_a_clear_retryable_failure(kube, registry):
    record = register(registry, "m-new")
    kube.stuck = True
    with pytest.raises(RolloutFailed, match=r"did not report m-new within 1s") as failure:
        serving(kube, registry, timeout_s=1.0).roll_out(record)
    assert not isinstance(failure.value, PermanentError)
    assert "2025-03.1" in str(failure.value), "the message shows what was answering"


def test_a_version_the_replicas_refuse_is_permanent(kube, registry):
    record = register(registry, "m-new")
    kube.refuse = "artifact sha256 mismatch"
    with pytest.raises(ArtifactRefused, match="artifact sha256 mismatch"):
        serving(kube, registry).roll_out(record)


def test_a_tampered_artifact_never_reaches_the_cluster(kube, registry):
    record = register(registry, "m-new")
    registry.blobs.put("models/m-new/model.zip", b"something else")
    with pytest.raises(ArtifactRefused, match="is not the registered"):
        serving(kube, registry).roll_out(record)
    assert kube.recorder.requests == []


def test_a_missing_rayservice_is_permanent_and_named(kube, registry):
    record = register(registry, "m-new")
    gke = serving(kube, registry)
    gke.name = "no-such-service"
    with pytest.raises(KubeApiRefused, match="404"):
        gke.roll_out(record)


def test_the_deployer_publishes_nothing_until_the_version_answers(kube, make_ports):
    ports = make_ports()
    record = register(ports.registry, "m-new")
    ports.registry.promote(record.version, 0, by="test", reason="test")
    # Stuck, the roll-out must give up: a short deadline ends that part sooner, and a slow
    # machine only makes it give up sooner still.
    ports.serving = serving(kube, ports.registry, timeout_s=0.5)
    event = make_event(
        EvaluationPassed(
            month="2025-04",
            model_version="m-new",
            dataset_version="ds-2025-04",
            metrics={},
            baseline_metrics={},
            champion_version=None,
            champion_metrics=None,
            reasons=["test"],
            caused_by="event-0",
        ),
        source="/test",
    )
    kube.stuck = True
    with pytest.raises(RolloutFailed):
        deploy(event, ports)
    assert ports.bus.log(topic="model.deployed") == []
    assert ports.registry.deployed()[0].version is None

    kube.stuck = False
    ports.serving.timeout_s = 120.0  # answering, it must succeed however slow the machine
    outcome = deploy(event, ports)
    assert outcome.startswith("deployed m-new at http://cashmatch-matcher-serve-svc")
    assert len({r.message_id for r in ports.bus.log(topic="model.deployed")}) == 1
    assert ports.registry.deployed()[0].version == "m-new"


def test_rollback_is_the_same_patch_with_the_older_version(kube, registry):
    old, new = register(registry, "m-old"), register(registry, "m-new")
    gke = serving(kube, registry)
    for record in (old, new):  # as the deployer does
        registry.mark_deployed(record.version, endpoint=gke.roll_out(record), by="t", reason="t")
    registry.promote(new.version, registry.champion()[1], by="test", reason="test")

    roll_back(registry, gke, "m-old", by="cli:rollback", settings=Settings())

    assert kube.user_config() == {"model_version": "m-old", "fallback_version": "m-new"}
    assert set(kube.patches()[-1].body["spec"]) == {"serveConfigV2"}
    assert registry.champion()[0].version == "m-old"
    assert registry.deployed()[0].version == "m-old"


def test_the_ca_certificate_is_the_only_trust_for_a_private_endpoint(tmp_path):
    """KubeApi over real TLS: the cluster CA from the settings verifies the server; without
    it the connection is refused."""
    import base64
    import ssl

    import httpx

    ca_pem, cert_pem, key_pem = _self_signed_chain()
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    kube = FakeKube()
    kube.recorder.start(tls=context)
    try:
        url = kube.recorder.url
        assert url.startswith("https://127.0.0.1:")
        path = f"/apis/ray.io/v1/namespaces/default/rayservices/{kube.name}"
        trusted = KubeApi(url, lambda: "t", ca_certificate=base64.b64encode(ca_pem).decode())
        assert trusted.get(path)["metadata"]["name"] == kube.name
        assert KubeApi(url, lambda: "t", ca_certificate=ca_pem.decode()).get(path)
        with pytest.raises(httpx.ConnectError):
            KubeApi(url, lambda: "t").get(path)
    finally:
        kube.recorder.stop()


def _self_signed_chain() -> tuple[bytes, bytes, bytes]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"test-ca-{uuid.uuid4().hex[:6]}")]
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ca.public_bytes(pem), cert.public_bytes(pem), key_pem
