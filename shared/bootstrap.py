"""The composition root: build the adapters of the configured stack, once per process."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.alerts import ConsoleNotifier, Notifier, notifier_from_env
from shared.dataset.store import DatasetStore
from shared.model_catalog import MirroredRegistry, ModelCatalog
from shared.ports import BlobStore, EventBus, Warehouse
from shared.registry import ModelRegistry
from shared.serving import NoServing, Serving
from shared.settings import Settings, SettingsError
from shared.training import RemoteTraining

# Which service listens to which topic; on Pub/Sub these are the push subscriptions.
SUBSCRIPTIONS: dict[str, str] = {
    "collector": "month.closed",
    "trainer": "dataset.ready",
    "monitor": "dataset.ready",
    "evaluator": "model.trained",
    "deployer": "evaluation.passed",
    # The alerter listens to the outcomes a person wants to hear about, one subscription each.
    "alert-rejected": "evaluation.rejected",
    "alert-deployed": "model.deployed",
    "alert-drift": "drift.detected",
}
DEAD_LETTER_TOPIC = "dead-letter"


@dataclass
class Ports:
    """Everything a handler may touch."""

    settings: Settings
    warehouse: Warehouse
    blobs: BlobStore
    bus: EventBus
    registry: ModelRegistry
    datasets: DatasetStore
    serving: Serving
    notifier: Notifier = field(default_factory=lambda: ConsoleNotifier())
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    # None: the trainer trains in its own process.
    training: RemoteTraining | None = None


def bootstrap(settings: Settings, *, serving: Serving | None = None) -> Ports:
    """Adapters for `settings.stack`; nothing is connected before this is called."""
    if settings.stack == "local":
        return _local(settings, serving)
    from shared.adapters.gcp import build_gcp_ports

    return build_gcp_ports(settings, serving)


def build_blob_store(settings: Settings) -> BlobStore:
    """The stack's blob store alone, for a process that needs nothing else (a training job)."""
    if settings.stack == "local":
        from shared.adapters.local.blobstore import DirectoryBlobStore

        return DirectoryBlobStore(settings.workspace.expanduser().resolve() / "blobs")
    from shared.adapters.gcp import build_gcs_blob_store

    return build_gcs_blob_store(settings)


def _local(settings: Settings, serving: Serving | None) -> Ports:
    from shared.adapters.local.bus import RetryPolicy, SqliteEventBus
    from shared.adapters.local.warehouse import DuckDBWarehouse

    if serving is None and settings.serving == "ray":
        from shared.adapters.local.ray_serving import LocalRayServing

        serving = LocalRayServing(settings)
    workspace = settings.workspace.expanduser().resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    blobs = build_blob_store(settings)
    bus = SqliteEventBus(
        workspace / "bus.sqlite3",
        SUBSCRIPTIONS,
        RetryPolicy(
            max_attempts=settings.max_attempts,
            min_backoff_s=settings.min_backoff_s,
            max_backoff_s=settings.max_backoff_s,
            lease_s=settings.lease_s,
        ),
    )
    warehouse: Warehouse = (
        DuckDBWarehouse(settings.warehouse_path) if settings.warehouse else _NoWarehouse()  # type: ignore[assignment]
    )
    return assemble(settings, warehouse, blobs, bus, serving)


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
