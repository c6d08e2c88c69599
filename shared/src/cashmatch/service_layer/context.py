"""What a handler is handed: the ports of one process, built by the composition root."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from cashmatch.ports import BlobStore, EventBus, Notifier, RemoteTraining, Serving, Warehouse
from cashmatch.service_layer.dataset_store import DatasetStore
from cashmatch.service_layer.registry import ModelRegistry
from cashmatch.settings import Settings


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
    notifier: Notifier
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    # None: the trainer trains in its own process.
    training: RemoteTraining | None = None
