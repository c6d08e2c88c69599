"""The gcp stack's adapters: Cloud Storage, BigQuery and Pub/Sub behind the same ports.

Nothing here imports a Google client at import time; `build_gcp_ports` does, when called.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.bootstrap import Ports
    from shared.serving import Serving
    from shared.settings import Settings

__all__ = ["build_gcp_ports"]


def build_gcp_ports(
    settings: Settings, serving: Serving | None = None, *, use_bq_storage_api: bool = False
) -> Ports:
    """Ports on Cloud Storage, BigQuery and Pub/Sub; emulators are used where their
    STORAGE_EMULATOR_HOST / BIGQUERY_EMULATOR_HOST / PUBSUB_EMULATOR_HOST are set."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery, storage
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    from shared.adapters.gcp.blobstore import GcsBlobStore
    from shared.adapters.gcp.bus import PubSubEventBus
    from shared.adapters.gcp.warehouse import BigQueryWarehouse
    from shared.adapters.local.bus import RetryPolicy
    from shared.bootstrap import DEAD_LETTER_TOPIC, SUBSCRIPTIONS, assemble
    from shared.events import PAYLOADS

    # The storage and Pub/Sub clients switch to their emulator (and anonymous credentials) on
    # their own when the variable is set; BigQuery's client needs both spelt out.
    storage_client = storage.Client(project=settings.project)
    bq_host = os.environ.get("BIGQUERY_EMULATOR_HOST")
    if bq_host:
        bq_client = bigquery.Client(
            project=settings.project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=_with_scheme(bq_host)),
        )
    else:
        bq_client = bigquery.Client(project=settings.project)

    blobs = GcsBlobStore(storage_client, settings.bucket)
    bus = PubSubEventBus(
        PublisherClient(),
        SubscriberClient(),
        settings.project,
        SUBSCRIPTIONS,
        journal=blobs,
        dead_letter_topic=DEAD_LETTER_TOPIC,
        retry=RetryPolicy(
            max_attempts=settings.max_attempts,
            min_backoff_s=settings.min_backoff_s,
            max_backoff_s=settings.max_backoff_s,
            lease_s=settings.lease_s,
        ),
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
    return assemble(settings, warehouse, blobs, bus, serving)


def _with_scheme(host: str) -> str:
    return host if "://" in host else f"http://{host}"
