"""The gcp stack's adapters: Cloud Storage, BigQuery and Pub/Sub behind the same ports, and
by configuration GKE serving (KubeRay RayService), Vertex AI training jobs and Vertex AI Model
Registry mirroring.

Nothing here imports a Google client at import time; `gcp_adapters` does, when called, and only
the clients the settings ask for (a collector never loads Vertex AI or Cloud Build).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from cashmatch.ports import (
    BlobStore,
    EventBus,
    ModelCatalog,
    RemoteTraining,
    RetryPolicy,
    Serving,
    Warehouse,
)

if TYPE_CHECKING:
    from cashmatch.settings import Settings

__all__ = [
    "GcpAdapters",
    "build_gcs_blob_store",
    "build_gke_serving",
    "build_vertex_catalog",
    "build_vertex_training",
    "gcp_adapters",
]

# The checkout the serving image is built from: this tree when it is one, else the working
# directory (the service image's /app, which holds the same folders).
_TREE = next((p for p in Path(__file__).resolve().parents if (p / "uv.lock").is_file()), Path.cwd())


def build_gcs_blob_store(settings: Settings) -> BlobStore:
    """The Cloud Storage blob store alone (STORAGE_EMULATOR_HOST is honoured by the client)."""
    from google.cloud import storage

    from cashmatch.adapters.gcp.blobstore import GcsBlobStore

    return GcsBlobStore(storage.Client(project=settings.project), settings.bucket)


class GcpAdapters(NamedTuple):
    """The gcp stack's adapters, for the composition root to assemble into Ports."""

    warehouse: Warehouse
    blobs: BlobStore
    bus: EventBus
    serving: Serving | None
    training: RemoteTraining | None
    catalog: ModelCatalog | None


def gcp_adapters(
    settings: Settings,
    retry: RetryPolicy,
    serving: Serving | None = None,
    *,
    use_bq_storage_api: bool = False,
) -> GcpAdapters:
    """Adapters on Cloud Storage, BigQuery and Pub/Sub; emulators are used where their
    STORAGE_EMULATOR_HOST / BIGQUERY_EMULATOR_HOST / PUBSUB_EMULATOR_HOST are set."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    from cashmatch.adapters.gcp.bus import PubSubEventBus
    from cashmatch.adapters.gcp.warehouse import BigQueryWarehouse
    from cashmatch.domain.events import PAYLOADS
    from cashmatch.domain.subscriptions import DEAD_LETTER_TOPIC, SUBSCRIPTIONS

    # The storage and Pub/Sub clients switch to their emulator (and anonymous credentials) on
    # their own when the variable is set; BigQuery's client needs both spelt out.
    bq_host = os.environ.get("BIGQUERY_EMULATOR_HOST")
    if bq_host:
        bq_client = bigquery.Client(
            project=settings.project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=_with_scheme(bq_host)),
        )
    else:
        bq_client = bigquery.Client(project=settings.project)

    blobs = build_gcs_blob_store(settings)
    bus = PubSubEventBus(
        PublisherClient(),
        SubscriberClient(),
        settings.project,
        SUBSCRIPTIONS,
        journal=blobs,
        dead_letter_topic=DEAD_LETTER_TOPIC,
        retry=retry,
    )
    if os.environ.get("PUBSUB_EMULATOR_HOST"):
        # An emulator starts empty; on GCP, Terraform creates topics and subscriptions.
        bus.ensure_topology(sorted(PAYLOADS))
    warehouse = BigQueryWarehouse(
        bq_client,
        settings.warehouse,
        # Emulators cannot serve query results through the Storage Read API.
        use_storage_api=use_bq_storage_api and not bq_host,
    )
    if serving is None and settings.gke_endpoint:
        serving = build_gke_serving(settings, blobs)
    return GcpAdapters(
        warehouse,
        blobs,
        bus,
        serving,
        training=build_vertex_training(settings) if settings.vertex_training else None,
        catalog=build_vertex_catalog(settings) if settings.vertex_registry else None,
    )


def build_gke_serving(settings: Settings, blobs: BlobStore) -> Serving:
    """The RayService roll-out of CASHMATCH_GKE_*, building images with Cloud Build."""
    from cashmatch.adapters.gcp.cloud_build import SOURCE_PATHS, CloudBuildImages
    from cashmatch.adapters.gcp.gke_serving import GkeRayServing, GoogleAccessToken, KubeApi
    from cashmatch.settings import SettingsError

    images = None
    code_root = None
    if settings.serving_build != "never":
        from google.cloud.devtools import cloudbuild_v1

        code_root = _code_root()
        missing = [p for p in SOURCE_PATHS if not (code_root / p).exists()]
        if missing:
            # Fail at start-up, not at the first roll-out that needs a build.
            raise SettingsError(
                f"CASHMATCH_SERVING_BUILD={settings.serving_build}: the serving image is built "
                f"from {code_root}, which lacks {', '.join(missing)} (copy them into the "
                "deployer's image, or set CASHMATCH_SERVING_BUILD=never)"
            )
        images = CloudBuildImages(
            cloudbuild_v1.CloudBuildClient(),
            blobs,
            project=settings.project,
            repository=settings.serving_image_repository,
            code_root=code_root,
            service_account=settings.build_service_account,
            timeout_s=settings.build_timeout_s,
        )
    api = KubeApi(
        settings.gke_endpoint, GoogleAccessToken(), ca_certificate=settings.gke_ca_certificate
    )
    return GkeRayServing(
        api,
        blobs,
        namespace=settings.gke_namespace,
        name=settings.gke_rayservice,
        images=images,
        build=settings.serving_build,
        code_root=code_root,
        timeout_s=settings.gke_rollout_timeout_s,
    )


def build_vertex_training(settings: Settings) -> RemoteTraining:
    """Vertex AI custom jobs running cashmatch.entrypoints.vertex_job in the trainer's image."""
    from cashmatch.adapters.gcp.vertex import job_client
    from cashmatch.adapters.gcp.vertex_training import JOB_SETTINGS, VertexTraining

    return VertexTraining(
        job_client(settings.vertex_api_endpoint),
        project=settings.project,
        region=settings.region,
        image=settings.vertex_training_image,
        machine_types=settings.vertex_machine_table,
        service_account=settings.vertex_service_account,
        env={f"CASHMATCH_{n.upper()}": str(getattr(settings, n)) for n in JOB_SETTINGS},
        wait_s=settings.vertex_training_wait_s,
    )


def build_vertex_catalog(settings: Settings) -> ModelCatalog:
    """Vertex AI Model Registry, where each champion becomes a version with the alias."""
    from cashmatch.adapters.gcp.vertex import model_client
    from cashmatch.adapters.gcp.vertex_registry import VertexModelCatalog

    return VertexModelCatalog(
        model_client(settings.vertex_api_endpoint),
        project=settings.project,
        region=settings.region,
        model_id=settings.vertex_model_id,
        serving_image=settings.vertex_serving_image,
    )


def _code_root() -> Path:
    return _TREE


def _with_scheme(host: str) -> str:
    return host if "://" in host else f"http://{host}"
