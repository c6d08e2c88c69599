"""The composition root: build the adapters of the configured stack, once per process.

Only entry points (the CloudEvent edge, the CLI, the matcher's Serve app, the Vertex job)
import this module; handlers receive the `Ports` it builds. Adapters are imported inside the
functions that build them so that a process loads only its own stack's clients.
"""

from __future__ import annotations

from cashmatch.adapters.notifiers import notifier_from_env
from cashmatch.domain.subscriptions import SUBSCRIPTIONS
from cashmatch.ports import (
    BlobStore,
    EventBus,
    ModelCatalog,
    RemoteTraining,
    RetryPolicy,
    Serving,
    Warehouse,
)
from cashmatch.service_layer.context import Ports
from cashmatch.service_layer.dataset_store import DatasetStore
from cashmatch.service_layer.model_catalog import MirroredRegistry
from cashmatch.service_layer.registry import ModelRegistry
from cashmatch.service_layer.serving import NoServing
from cashmatch.settings import Settings, SettingsError


def bootstrap(settings: Settings, *, serving: Serving | None = None) -> Ports:
    """Adapters for `settings.stack`; nothing is connected before this is called."""
    if settings.stack == "local":
        return _local(settings, serving)
    from cashmatch.adapters.gcp import gcp_adapters

    gcp = gcp_adapters(settings, _retry(settings), serving)
    return assemble(
        settings,
        gcp.warehouse,
        gcp.blobs,
        gcp.bus,
        gcp.serving,
        training=gcp.training,
        catalog=gcp.catalog,
    )


def build_blob_store(settings: Settings) -> BlobStore:
    """The stack's blob store alone, for a process that needs nothing else (a training job)."""
    if settings.stack == "local":
        from cashmatch.adapters.local.blobstore import DirectoryBlobStore

        return DirectoryBlobStore(settings.workspace.expanduser().resolve() / "blobs")
    from cashmatch.adapters.gcp import build_gcs_blob_store

    return build_gcs_blob_store(settings)


def _local(settings: Settings, serving: Serving | None) -> Ports:
    from cashmatch.adapters.local.bus import SqliteEventBus
    from cashmatch.adapters.local.warehouse import DuckDBWarehouse

    if serving is None and settings.serving == "ray":
        from cashmatch.adapters.local.ray_serving import LocalRayServing

        serving = LocalRayServing(settings)
    workspace = settings.workspace.expanduser().resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    blobs = build_blob_store(settings)
    bus = SqliteEventBus(
        workspace / "bus.sqlite3",
        SUBSCRIPTIONS,
        _retry(settings),
    )
    warehouse: Warehouse = (
        DuckDBWarehouse(settings.warehouse_path) if settings.warehouse else _NoWarehouse()  # type: ignore[assignment]
    )
    return assemble(settings, warehouse, blobs, bus, serving)


def _retry(settings: Settings) -> RetryPolicy:
    """The bus's retry policy, the same on both stacks, from CASHMATCH_MAX_ATTEMPTS and co."""
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        min_backoff_s=settings.min_backoff_s,
        max_backoff_s=settings.max_backoff_s,
        lease_s=settings.lease_s,
    )


def assemble(
    settings: Settings,
    warehouse: Warehouse,
    blobs: BlobStore,
    bus: EventBus,
    serving: Serving | None,
    *,
    training: RemoteTraining | None = None,
    catalog: ModelCatalog | None = None,
) -> Ports:
    """Ports from a stack's three adapters; the registry and datasets live in its blob store.

    With a `catalog`, every new champion is mirrored into it (MirroredRegistry); with
    `training`, the trainer runs its jobs there instead of in process.
    """
    return Ports(
        settings=settings,
        warehouse=warehouse,
        blobs=blobs,
        bus=bus,
        registry=ModelRegistry(blobs) if catalog is None else MirroredRegistry(blobs, catalog),
        datasets=DatasetStore(blobs),
        serving=serving or NoServing(),
        notifier=notifier_from_env(),
        training=training,
    )


class _NoWarehouse:
    """Stands in when no warehouse is configured; only the collector needs one."""

    def __getattr__(self, name: str) -> object:
        raise SettingsError(
            "no warehouse configured: set CASHMATCH_WAREHOUSE to a DuckDB file "
            "(e.g. one written by `cashmatch synth`)"
        )
