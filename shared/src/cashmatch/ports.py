"""Ports: the small interfaces behind which every piece of I/O lives, all in this one module.

Handlers and domain code see only these; adapters in `cashmatch/adapters/` implement them for
the `local` stack (DuckDB, a directory, an SQLite file, Ray Serve on this machine) and the `gcp`
stack (BigQuery, Cloud Storage, Pub/Sub, Cloud Build + GKE, Vertex AI). Every adapter of a port
passes the same contract suite in `tests/integration/`. See docs/DESIGN.md, "Ports".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from cashmatch.domain.alerts import Alert
from cashmatch.domain.model_records import ModelRecord, ThresholdOverride


class PreconditionFailed(Exception):
    """A conditional write lost the race: the object's generation was not the expected one."""


class BlobNotFound(KeyError):
    """No object at this key."""


@dataclass(frozen=True)
class Blob:
    data: bytes
    generation: int


@runtime_checkable
class BlobStore(Protocol):
    """Objects by key. Writes are atomic: a reader sees the old bytes or the new, never a mix."""

    def put(self, key: str, data: bytes, *, if_generation_match: int | None = None) -> int:
        """Write `data` at `key`; return the new generation.

        `if_generation_match=0` means "only if absent"; any other number means "only if the
        current generation is this one"; a mismatch raises PreconditionFailed.
        """
        ...

    def get(self, key: str) -> Blob:
        """Read an object and the generation those bytes belong to; BlobNotFound if absent."""
        ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> list[str]:
        """Keys under `prefix`, sorted."""
        ...

    def delete(self, key: str) -> None: ...

    def uri(self, key: str) -> str:
        """A URI naming the object (file:///... or gs://bucket/...)."""
        ...

    def key_from_uri(self, uri: str) -> str:
        """Inverse of uri(); ValueError for a URI of another store."""
        ...


@dataclass(frozen=True)
class Delivery:
    """One delivery of a message to one subscription."""

    message_id: str
    topic: str
    subscription: str
    data: bytes
    attributes: dict[str, str]
    attempt: int  # 1 for the first delivery
    published_at: dt.datetime
    ack_id: str  # opaque handle for ack / nack / park


# The states of a delivery not yet settled (what `EventBus.pending` counts), on every bus.
OPEN_STATES = ("pending", "leased", "retrying")


@dataclass(frozen=True)
class BusRecord:
    """A line of the bus's log: a message and, per subscription, what became of it."""

    message_id: str
    topic: str
    subscription: str | None
    state: str  # published | pending | leased | done | retrying | dead (OPEN_STATES: unsettled)
    attempts: int
    detail: str
    published_at: dt.datetime
    updated_at: dt.datetime
    attributes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def published_only(
        cls, message_id: str, topic: str, published_at: dt.datetime, attributes: dict[str, str]
    ) -> BusRecord:
        """The record of a message no subscription receives."""
        return cls(
            message_id=message_id,
            topic=topic,
            subscription=None,
            state="published",
            attempts=0,
            detail="",
            published_at=published_at,
            updated_at=published_at,
            attributes=attributes,
        )


@runtime_checkable
class EventBus(Protocol):
    """Topics and subscriptions with at-least-once delivery (Pub/Sub semantics)."""

    def publish(
        self, topic: str, data: bytes, attributes: dict[str, str], *, message_id: str
    ) -> bool:
        """Publish once: a second publish with the same `message_id` is ignored (returns False)."""
        ...

    def pull(self, subscription: str, *, max_messages: int = 1) -> list[Delivery]:
        """Lease up to `max_messages` deliveries that are due; leased ones go to nobody else."""
        ...

    def ack(self, delivery: Delivery, *, outcome: str = "done") -> None:
        """The subscriber finished; `outcome` is kept in the log."""
        ...

    def nack(self, delivery: Delivery, *, reason: str) -> None:
        """Failed for now: redeliver after a backoff, dead-letter after the last attempt."""
        ...

    def park(self, delivery: Delivery, *, reason: str) -> None:
        """Never retry: move to the dead letter with `reason`."""
        ...

    def get_message(self, message_id: str) -> tuple[str, bytes, dict[str, str]]:
        """(topic, data, attributes) of a published message; KeyError if unknown."""
        ...

    def dead_letters(self) -> list[BusRecord]: ...

    def redrive(self, message_id: str, subscription: str | None = None) -> int:
        """Make dead deliveries of a message due again; return how many."""
        ...

    def log(self, *, limit: int = 100, topic: str | None = None) -> list[BusRecord]:
        """The newest messages and their per-subscription outcomes."""
        ...

    def pending(self, subscriptions: list[str] | None = None) -> int:
        """Deliveries not yet done or dead, of these subscriptions or all (run until idle)."""
        ...

    def history(self, message_id: str) -> list[dict[str, Any]]:
        """Every settled attempt of a message, oldest first: subscription, attempt, outcome,
        detail, at."""
        ...


class WarehouseSchemaError(Exception):
    """The warehouse lacks a contract table or column; the message names which."""


@runtime_checkable
class Warehouse(Protocol):
    """Read-only access to the finance system's contract tables (docs/DESIGN.md)."""

    def check_schema(self) -> None:
        """Raise WarehouseSchemaError naming every missing table or column."""
        ...

    def month_bounds(self) -> tuple[str, str] | None:
        """First and last month ("YYYY-MM") with transfers, or None for an empty warehouse."""
        ...

    def transfers(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Transfers booked in [start, end)."""
        ...

    def open_invoices(
        self, start: dt.date, end: dt.date, *, with_period_labels: bool = True
    ) -> pd.DataFrame:
        """Invoices that may be paid by transfers booked in [start, end).

        Issued before `end` and not fully settled by transfers booked before `start`; with an
        `open_amount` column: the amount still unpaid at `start`. With `with_period_labels`, also
        invoices that labels of this period pay (so every label finds its invoice).
        """
        ...

    def matches(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Human labels of the transfers booked in [start, end)."""
        ...

    def unplaced(self) -> pd.DataFrame:
        """Rows no month can hold (table, key, reason): a transfer without booking date, an
        invoice without issue date, a label of no known, dated transfer."""
        ...


# the bus's retry policy (both buses) -------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """How often and how fast a failing delivery is retried before it goes to the dead letter."""

    max_attempts: int = 5  # then dead letter
    min_backoff_s: float = 1.0  # backoff before attempt n+1: min * 2**(n-1), capped at max
    max_backoff_s: float = 60.0
    lease_s: float = 300.0  # a lease not settled within this is due again and counts as an attempt

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if not 0 <= self.min_backoff_s <= self.max_backoff_s:
            raise ValueError("backoffs must satisfy 0 <= min_backoff_s <= max_backoff_s")
        if self.lease_s <= 0:
            raise ValueError(f"lease_s must be positive, not {self.lease_s}")

    def backoff(self, failed_attempt: int) -> dt.timedelta:
        """The wait after attempt number `failed_attempt` (1-based) failed."""
        # Cap the exponent too: 2**n overflows a float long before anyone retries that often.
        seconds = self.min_backoff_s * 2 ** min(max(failed_attempt - 1, 0), 64)
        return dt.timedelta(seconds=min(seconds, self.max_backoff_s))


# serving, remote training, an outside model catalogue, notifications --------------
@runtime_checkable
class Serving(Protocol):
    """Rolls a registered model version out; returns where it now answers."""

    def roll_out(self, record: ModelRecord, override: ThresholdOverride | None = None) -> str:
        """Serve `record.version` (at the override's threshold when given, else its own);
        return the endpoint once it answers so, or raise why not. Idempotent."""
        ...


class TrainingJob(BaseModel):
    """One candidate to train elsewhere; the same job twice names the same model version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_version: str = Field(description="the deterministic version the job must produce")
    dataset_uri: str = Field(description="manifest URI of the dataset to train on")
    dataset_version: str = Field(description="the dataset version the event named")
    command: tuple[str, ...] = Field(
        description="what the job runs in the trainer's image (python -m ... with arguments)"
    )
    month_transfers: int = Field(
        0, ge=0, description="transfers of the dataset's month: what picks the job's machine"
    )


@runtime_checkable
class RemoteTraining(Protocol):
    """Runs a training job to its end; the artifact and result are in the blob store after."""

    def run(self, job: TrainingJob) -> str:
        """Run (or find and wait for) the job; return its name; raise if it did not succeed."""
        ...


@runtime_checkable
class ModelCatalog(Protocol):
    """Keeps an outside catalogue's "champion" in step with the registry."""

    def publish_champion(self, record: ModelRecord) -> str:
        """Make sure `record` is in the catalogue and marked champion; return its name there.

        Idempotent: publishing the same version twice changes nothing the second time.
        """
        ...


@runtime_checkable
class Notifier(Protocol):
    """Sends alerts somewhere; never raises."""

    def notify(self, alert: Alert) -> bool:
        """Deliver `alert` and say True, or log why it could not be delivered and say False."""
        ...
