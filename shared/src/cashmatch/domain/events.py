"""Typed events in a CloudEvents 1.0 envelope, one pydantic model per event type.

The bytes on the bus (a local SQLite file or a Pub/Sub message) are the structured-mode JSON of
`Envelope`. Each later event names the event it was made from (`caused_by`) and the dataset and
model versions, so any deployed model can be traced back to the months of data it saw.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cashmatch.domain.model_records import VerdictScores

TYPE_PREFIX = "com.cashmatch."
_LINEAGE_NS = uuid.UUID("6f1c6a52-58a3-4c7e-9b0c-3c1a4e0f2d11")
# ASCII digits only and the whole string: `$` would let a trailing newline through, and `\d`
# any script's digits; either would end up in blob keys.
_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")


def checked_month(value: str) -> str:
    """`value` if it is a month written YYYY-MM; ValueError saying so if not."""
    if not _MONTH.fullmatch(value):
        raise ValueError(f"month must look like YYYY-MM, got {value!r}")
    return value


class MalformedEvent(ValueError):
    """The bytes are not a valid cashmatch event; the message says what is wrong and where."""


class Payload(BaseModel):
    """Base of every event's `data`: unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    topic: ClassVar[str]
    version: ClassVar[int] = 1

    month: str = Field(description="the month the event concerns, YYYY-MM")

    @field_validator("month")
    @classmethod
    def _month_format(cls, value: str) -> str:
        return checked_month(value)

    @classmethod
    def event_type(cls) -> str:
        """The versioned CloudEvent type, e.g. com.cashmatch.month.closed.v1."""
        return f"{TYPE_PREFIX}{cls.topic}.v{cls.version}"


class MonthClosed(Payload):
    """Every transfer booked in `month` has been reviewed by a person."""

    topic: ClassVar[str] = "month.closed"


class DatasetReady(Payload):
    """The collector wrote the training slices and the frozen test set for `month`."""

    topic: ClassVar[str] = "dataset.ready"
    dataset_uri: str = Field(description="the dataset manifest")
    dataset_version: str = Field(description="content hash of the manifest")
    training_months: list[str] = Field(description="months whose slices form the training set")
    test_set_version: str = Field(description="content hash of the frozen test set")
    test_set_created: bool = Field(description="true when this run froze the test set")
    rows: dict[str, int] = Field(description="row counts: train/test/month transfers, etc.")
    quarantined: int = Field(0, description="rows set aside as invalid in this month")
    caused_by: str = Field(description="id of the month.closed event")


class ModelTrained(Payload):
    """The trainer saved a candidate model."""

    topic: ClassVar[str] = "model.trained"
    model_uri: str
    model_version: str = Field(description="derived from dataset version and trainer config")
    artifact_digest: str = Field(description="sha256 of the artifact bytes")
    dataset_uri: str
    dataset_version: str
    training_months: list[str]
    training_metrics: dict[str, float]
    caused_by: str


class _Verdict(Payload, VerdictScores):
    """A verdict's event: the registry's `VerdictScores` with the version and dataset judged."""

    model_version: str
    dataset_version: str


class EvaluationPassed(_Verdict):
    """The candidate beat the champion and became the new champion."""

    topic: ClassVar[str] = "evaluation.passed"


class EvaluationRejected(_Verdict):
    """The candidate did not earn promotion; `reasons` says why."""

    topic: ClassVar[str] = "evaluation.rejected"


class ModelDeployed(Payload):
    """A model version is now serving."""

    topic: ClassVar[str] = "model.deployed"
    model_version: str
    dataset_version: str
    endpoint: str = Field(description="where it is served")
    caused_by: str


class DriftDetected(Payload):
    """The newest month differs from the training reference; the report says how."""

    topic: ClassVar[str] = "drift.detected"
    dataset_version: str = Field(description="the dataset whose newest month was compared")
    drifted_columns: list[str] = Field(description="what drifted, e.g. reference_rate")
    report_uri: str = Field(description="the HTML drift report")
    champion_version: str | None = Field(description="champion whose performance was checked")
    caused_by: str = Field(description="id of the dataset.ready event")


class PerformanceBreached(Payload):
    """A served version's auto decisions on a closed month fell short of the promise."""

    topic: ClassVar[str] = "performance.breached"
    model_version: str = Field(description="the version whose decisions were scored")
    auto: int = Field(description="transfers it settled without a person")
    auto_share: float
    auto_precision: float | None = Field(description="exactly right / auto")
    auto_precision_lower: float | None = Field(description="Wilson 95% lower bound")
    target: float = Field(description="the promised auto precision")
    threshold: float = Field(description="the serving threshold in force in the month")
    threshold_source: str
    holding_threshold: float | None = Field(
        description="the lowest threshold that would have held the target on this month"
    )
    report_uri: str = Field(description="the month's realized-performance record (JSON)")
    caused_by: str = Field(description="id of the dataset.ready event")


PAYLOADS: dict[str, type[Payload]] = {
    p.topic: p
    for p in (
        MonthClosed,
        DatasetReady,
        ModelTrained,
        EvaluationPassed,
        EvaluationRejected,
        ModelDeployed,
        DriftDetected,
        PerformanceBreached,
    )
}
_BY_TYPE = {p.event_type(): p for p in PAYLOADS.values()}


class Envelope(BaseModel):
    """A CloudEvents 1.0 event in structured mode."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1)
    type: str
    source: str = Field(min_length=1)
    time: dt.datetime
    subject: str | None = Field(None, description="the month")
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]

    @property
    def topic(self) -> str:
        """The topic this event travels on (the type without prefix and version)."""
        return topic_of_type(self.type)

    def payload(self) -> Payload:
        """The typed `data`; MalformedEvent if it does not validate."""
        model = _BY_TYPE.get(self.type)
        if model is None:
            raise MalformedEvent(f"unknown event type {self.type!r}")
        try:
            return model.model_validate(self.data)
        except ValidationError as exc:
            raise MalformedEvent(f"event {self.id} ({self.type}): {_fields(exc)}") from None

    def to_bytes(self) -> bytes:
        """Structured-mode JSON, the bytes carried by the bus."""
        return self.model_dump_json().encode()

    def attributes(self) -> dict[str, str]:
        """Message attributes for filtering without parsing the body (Pub/Sub style)."""
        return {"ce-type": self.type, "ce-id": self.id, "month": self.subject or ""}

    def binary_mode(self) -> tuple[bytes, dict[str, str]]:
        """The same event in the CloudEvents binary content mode: the data alone as the bytes,
        the context as `ce-*` attributes (what a CloudEvents SDK publishes; `parse_event` reads
        it back to this envelope)."""
        context = self.model_dump(mode="json", exclude={"data"}, exclude_none=True)
        attributes = {f"ce-{name}": str(value) for name, value in context.items()}
        attributes |= {"content-type": "application/json", "month": self.subject or ""}
        return json.dumps(self.data).encode(), attributes


def topic_of_type(event_type: str) -> str:
    """'com.cashmatch.month.closed.v1' -> 'month.closed'."""
    body = event_type.removeprefix(TYPE_PREFIX)
    return re.sub(r"\.v\d+$", "", body)


def make_event(
    payload: Payload, *, source: str, event_id: str | None = None, now: dt.datetime | None = None
) -> Envelope:
    """Wrap a payload in an envelope with a fresh (or given) id."""
    return Envelope(
        id=event_id or str(uuid.uuid4()),
        type=payload.event_type(),
        source=source,
        time=now or dt.datetime.now(dt.UTC),
        subject=payload.month,
        data=payload.model_dump(mode="json"),
    )


def derived_id(cause_id: str, topic: str) -> str:
    """The id of the event a handler publishes in answer to `cause_id`.

    Deterministic, so a redelivered cause publishes the same id and the bus drops the duplicate.
    """
    return str(uuid.uuid5(_LINEAGE_NS, f"{cause_id}/{topic}"))


def parse_event(raw: bytes, attributes: Mapping[str, str] | None = None) -> Envelope:
    """Decode bus bytes into an envelope with a known type and a valid payload.

    Both content modes of the CloudEvents Pub/Sub binding are read: structured (the bytes are
    the whole envelope, as cashmatch publishes) and binary (the context attributes travel as
    `ce-*` message attributes, the bytes are the event's data), which a CloudEvents SDK sends.
    """
    if attributes and BINARY_MODE_MARK in attributes:
        return _from_binary_mode(raw, attributes)
    return _checked(_json_object(raw, "body"), "envelope")


# A message is in binary content mode when its attributes carry the spec version.
BINARY_MODE_MARK = "ce-specversion"
_CONTEXT = ("specversion", "id", "type", "source", "time", "subject")


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedEvent(f"{what} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MalformedEvent(f"{what} must be a JSON object, got {type(doc).__name__}")
    return doc


def _from_binary_mode(raw: bytes, attributes: Mapping[str, str]) -> Envelope:
    """The envelope of a binary-mode message: context from `ce-*` attributes, data the bytes."""
    content_type = attributes.get("content-type", "application/json").split(";")[0].strip()
    if content_type != "application/json":
        raise MalformedEvent(f"binary-mode data must be application/json, not {content_type!r}")
    doc: dict[str, Any] = {
        name: attributes[f"ce-{name}"] for name in _CONTEXT if f"ce-{name}" in attributes
    }
    doc["data"] = _json_object(raw, "binary-mode data")
    return _checked(doc, "binary-mode message")


def _checked(doc: dict[str, Any], what: str) -> Envelope:
    """The envelope of `doc`, its type known and its payload valid; MalformedEvent if not."""
    try:
        envelope = Envelope.model_validate(doc)
    except ValidationError as exc:
        raise MalformedEvent(f"not a CloudEvents 1.0 {what}: {_fields(exc)}") from None
    envelope.payload()
    return envelope


def _fields(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
