"""Settings for GKE serving and Vertex AI, and how the gcp adapters are wired (no network:
the clients are only constructed, with google.auth.default answering anonymous credentials)."""

from __future__ import annotations

import pytest

from cashmatch.adapters.gcp.gke_serving import GkeRayServing
from cashmatch.adapters.gcp.vertex_registry import VertexModelCatalog
from cashmatch.adapters.gcp.vertex_training import VertexTraining
from cashmatch.bootstrap import bootstrap
from cashmatch.service_layer.model_catalog import MirroredRegistry
from cashmatch.service_layer.serving import NoServing
from cashmatch.settings import SettingsError, load_settings

pytestmark = pytest.mark.integration

GCP = {"stack": "gcp", "project": "p", "bucket": "b", "warehouse": "p.cashmatch"}


@pytest.fixture
def anonymous_google(monkeypatch):
    from google.auth.credentials import AnonymousCredentials

    monkeypatch.setattr("google.auth.default", lambda *a, **k: (AnonymousCredentials(), "p"))


def test_everything_is_off_by_default(anonymous_google):
    ports = bootstrap(load_settings(**GCP))
    assert isinstance(ports.serving, NoServing)
    assert ports.training is None
    assert not isinstance(ports.registry, MirroredRegistry)
    ports.bus.close()  # type: ignore[attr-defined]


def test_configured_gke_and_vertex_are_wired(anonymous_google):
    settings = load_settings(
        **GCP,
        gke_endpoint="https://gke-abc.europe-west1.gke.goog",
        gke_namespace="serving",
        serving_image_repository="europe-west1-docker.pkg.dev/p/cashmatch/matcher",
        build_service_account="cashmatch-build@p.iam.gserviceaccount.com",
        vertex_training=True,
        vertex_training_image="europe-west1-docker.pkg.dev/p/cashmatch/trainer:1",
        vertex_service_account="cashmatch-train-job@p.iam.gserviceaccount.com",
        vertex_registry=True,
        vertex_serving_image="europe-west1-docker.pkg.dev/p/cashmatch/matcher:1",
    )
    ports = bootstrap(settings)
    try:
        assert isinstance(ports.serving, GkeRayServing)
        assert (
            ports.serving.path == "/apis/ray.io/v1/namespaces/serving/rayservices/cashmatch-matcher"
        )
        assert ports.serving.build == "auto" and ports.serving.images is not None
        assert ports.serving.api.endpoint == "https://gke-abc.europe-west1.gke.goog"
        assert isinstance(ports.training, VertexTraining)
        assert ports.training.parent == "projects/p/locations/europe-west1"
        # The job gets what it needs to reach the bucket, and nothing that would make it train
        # remotely again.
        assert ports.training.env == {
            "CASHMATCH_STACK": "gcp",
            "CASHMATCH_PROJECT": "p",
            "CASHMATCH_REGION": "europe-west1",
            "CASHMATCH_BUCKET": "b",
            "CASHMATCH_WAREHOUSE": "p.cashmatch",
        }
        assert isinstance(ports.registry, MirroredRegistry)
        assert isinstance(ports.registry.catalog, VertexModelCatalog)
        assert ports.registry.catalog.model_name.endswith("/models/cashmatch-matcher")
        assert settings.vertex_api_endpoint == "europe-west1-aiplatform.googleapis.com"
    finally:
        ports.bus.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"gke_endpoint": "https://x"}, "CASHMATCH_GKE_ENDPOINT need CASHMATCH_STACK=gcp"),
        ({"vertex_training": True}, "CASHMATCH_VERTEX_TRAINING need CASHMATCH_STACK=gcp"),
        ({**GCP, "gke_endpoint": "https://x"}, "CASHMATCH_SERVING_IMAGE_REPOSITORY"),
        (
            {**GCP, "gke_endpoint": "http://10.0.0.1", "serving_build": "never"},
            "CASHMATCH_GKE_ENDPOINT must be https://",
        ),
        ({**GCP, "vertex_training": True}, "CASHMATCH_VERTEX_TRAINING_IMAGE"),
        ({**GCP, "vertex_registry": True}, "CASHMATCH_VERTEX_SERVING_IMAGE"),
        ({**GCP, "vertex_model_id": "Not Valid"}, "CASHMATCH_VERTEX_MODEL_ID"),
        ({**GCP, "serving_build": "sometimes"}, "CASHMATCH_SERVING_BUILD"),
    ],
)
def test_incomplete_or_misplaced_settings_are_refused_by_name(values, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(**values)


def test_a_misspelt_variable_is_named(monkeypatch):
    monkeypatch.setenv("CASHMATCH_VERTEX_TRAINIG", "true")
    with pytest.raises(SettingsError, match="CASHMATCH_VERTEX_TRAINIG"):
        load_settings()


def test_plain_http_is_allowed_to_loopback_only():
    settings = load_settings(**GCP, gke_endpoint="http://127.0.0.1:8443", serving_build="never")
    assert settings.gke_endpoint == "http://127.0.0.1:8443"


def test_a_deployer_image_without_the_serving_dockerfile_fails_at_start_up(
    anonymous_google, monkeypatch, tmp_path
):
    import cashmatch.adapters.gcp as gcp

    for name in ("pyproject.toml", "uv.lock", "README.md"):
        (tmp_path / name).write_text("")
    for name in ("shared", "services"):
        (tmp_path / name).mkdir()
    monkeypatch.setattr(gcp, "_TREE", tmp_path)
    settings = load_settings(
        **GCP, gke_endpoint="https://gke.example", serving_image_repository="r/matcher"
    )
    with pytest.raises(SettingsError, match=r"lacks infra/serving.Dockerfile"):
        gcp.build_gke_serving(settings, object())  # type: ignore[arg-type]
