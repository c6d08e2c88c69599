"""Ports: the small interfaces behind which every piece of I/O lives.

Handlers and domain code see only these; adapters in `shared/adapters/` implement them for the
`local` stack (DuckDB, a directory, an SQLite file) and the `gcp` stack (BigQuery, Cloud Storage,
Pub/Sub). Every adapter of a port passes the same contract suite in `tests/integration/`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import pandas as pd


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


@dataclass(frozen=True)
class BusRecord:
    """A line of the bus's log: a message and, per subscription, what became of it."""

    message_id: str
    topic: str
    subscription: str | None
    state: str  # published | pending | leased | done | retrying | dead
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
    """Read-only access to the finance system's contract tables (DESIGN.md)."""

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
