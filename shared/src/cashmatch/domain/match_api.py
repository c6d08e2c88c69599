"""The matcher's HTTP contract: pydantic models of every request and response body.

Requests follow the finance system's data contract (docs/DESIGN.md) so a client sends the rows it
already has. Unknown fields are rejected, every string is bounded and every amount finite, so
nothing a client sends reaches the model in a shape it was not trained on.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cashmatch.domain.contract import MAX_AMOUNT
from cashmatch.domain.reason_codes import REASONS

# An id has something to see in it and no control characters (a NUL or a newline in an id
# ends up in logs and CSVs).
Id = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$",
    ),
]
Name = Annotated[str, Field(max_length=300)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]
# Money as the model takes it (a float); bounded so no value overflows a feature. Strict: a JSON
# number only, as the OpenAPI document says; `true` or "811.80" would otherwise be taken as 1.0
# and 811.8 without a word.
Money = Annotated[float, Field(strict=True, ge=-MAX_AMOUNT, le=MAX_AMOUNT, allow_inf_nan=False)]
_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _date_text(value: object) -> object:
    """A date as the schema says it is: "YYYY-MM-DD" text (or a date, from Python). Lax parsing
    would take the number 0 as 1970-01-01 (a Unix time) and a datetime's text as its date: both
    are sender bugs to name, not to guess."""
    if isinstance(value, str) and not _DATE_TEXT.fullmatch(value):
        raise ValueError("a date is YYYY-MM-DD text")
    if not isinstance(value, str | dt.date) or isinstance(value, dt.datetime):
        raise ValueError("a date is YYYY-MM-DD text")
    return value


Date = Annotated[dt.date, BeforeValidator(_date_text)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Transfer(_Strict):
    """One bank transfer, as in the contract's `transfers` table."""

    transfer_id: Id
    booking_date: Date
    direction: Literal["incoming", "outgoing"] = Field(
        description="incoming pays a receivable, outgoing pays a payable"
    )
    amount: Money = Field(gt=0, description="the transferred amount, always positive")
    currency: Currency
    counterparty_name: Name | None = None
    counterparty_iban: Annotated[str, Field(max_length=64)] | None = None
    title: Annotated[str, Field(max_length=1000)] | None = Field(
        None, description="free-text remittance information"
    )


class OpenInvoice(_Strict):
    """One invoice still open for payment, as in the contract's `invoices` table."""

    invoice_id: Id
    invoice_number: Annotated[str, Field(min_length=1, max_length=128)]
    direction: Literal["receivable", "payable"]
    counterparty_id: Id
    counterparty_name: Name
    counterparty_tax_id: Annotated[str, Field(max_length=64)] | None = None
    counterparty_iban: Annotated[str, Field(max_length=64)] | None = None
    currency: Currency
    amount: Money = Field(description="gross amount; a credit note is negative")
    issue_date: Date
    due_date: Date
    open_amount: Money | None = Field(
        None,
        description="what is still unpaid, the full amount when left out; below 0 when overpaid",
    )

    @field_validator("due_date")
    @classmethod
    def _due_after_issue(cls, due: dt.date, info: ValidationInfo) -> dt.date:
        issued = info.data.get("issue_date")
        if issued is not None and due < issued:
            raise ValueError(f"due_date {due} is before issue_date {issued}")
        return due


def _duplicates(ids: list[str]) -> list[str]:
    seen: set[str] = set()
    return sorted({i for i in ids if i in seen or seen.add(i)})  # type: ignore[func-returns-value]


def _check_unique_invoices(invoices: list[OpenInvoice]) -> None:
    dup = _duplicates([inv.invoice_id for inv in invoices])
    if dup:
        raise ValueError(f"open_invoices: invoice_id must be unique, repeated: {dup[:5]}")


class MatchRequest(_Strict):
    """One transfer and the open invoices it may pay."""

    transfer: Transfer
    open_invoices: list[OpenInvoice] = Field(
        description="the invoices to consider; the matcher's blocking picks candidates among them"
    )

    @model_validator(mode="after")
    def _unique(self) -> MatchRequest:
        _check_unique_invoices(self.open_invoices)
        return self


class BatchMatchRequest(_Strict):
    """Many transfers matched against one list of open invoices."""

    transfers: list[Transfer] = Field(min_length=1)
    open_invoices: list[OpenInvoice]

    @model_validator(mode="after")
    def _unique(self) -> BatchMatchRequest:
        dup = _duplicates([t.transfer_id for t in self.transfers])
        if dup:
            raise ValueError(f"transfers: transfer_id must be unique, repeated: {dup[:5]}")
        _check_unique_invoices(self.open_invoices)
        return self


class Candidate(BaseModel):
    """An invoice the model scored for this transfer, best first."""

    invoice_id: str
    score: float = Field(description="the pair model's probability that the transfer pays it")
    proposed: bool = Field(description="whether it is in the proposed set")


# Why an invoice is proposed; the same codes as cashmatch.domain.reason_codes.REASONS
# (a unit test holds them equal), whose phrases the schema's description lists.
ReasonCode = Literal[
    "rf-reference",
    "reference:exact",
    "reference:reformatted",
    "reference:1-edit",
    "reference:2-edits",
    "reference:sequence-only",
    "tax-id",
    "vat:consistent",
    "amount:equal",
    "amount:subset-sum",
    "amount:period-balance",
    "amount:fee-or-discount",
    "amount:partial",
    "amount:overpaid",
    "credit-note:netted",
    "payer:same-account",
    "payer:known-account",
    "payer:known-name",
    "payer:name",
    "payer:title-token",
    "invoice:oldest-equal",
]
_REASONS_DOC = "why the invoice is proposed, strongest first: " + "; ".join(
    f"`{code}`: {phrase}" for code, phrase in REASONS.items()
)


class Allocation(BaseModel):
    """The part of the transfer applied to one invoice of the proposed set, and why it is
    proposed."""

    invoice_id: str
    amount: float
    reasons: list[ReasonCode] = Field(description=_REASONS_DOC)
    why: str = Field(description="the strongest reasons in one sentence for a person")


class MatchResult(BaseModel):
    """The model's answer for one transfer."""

    transfer_id: str
    decision: Literal["auto", "review"] = Field(
        description="auto: settle without a person (confidence above the model's threshold)"
    )
    confidence: float = Field(description="probability that the proposed set is exactly right")
    proposed_invoice_ids: list[str] = Field(description="empty: the transfer pays no invoice")
    allocations: list[Allocation]
    candidates: list[Candidate]


class MatchResponse(MatchResult):
    """One transfer's answer and the model version that gave it."""

    model_version: str


class BatchMatchResponse(BaseModel):
    """Every transfer's answer, in request order, from one model version."""

    model_version: str
    results: list[MatchResult]


class RefusedVersion(BaseModel):
    """A version this replica was asked to load and refused."""

    version: str
    reason: str
    at: dt.datetime


class ModelInfo(BaseModel):
    """The version serving on the replica that answered, with its registry record."""

    version: str | None = Field(description="None until a model is loaded")
    requested_version: str | None = Field(description="the version the roll-out asked for")
    loaded_at: dt.datetime | None = None
    threshold: float | None = Field(None, description="confidence needed for `auto`")
    threshold_source: str | None = Field(
        None,
        description="'model' (its own calibrated threshold) or the guardrail override in force "
        "and who set it (cashmatch guardrail show)",
    )
    training_metrics: dict[str, float] = Field(default_factory=dict)
    lineage: dict[str, object] = Field(
        default_factory=dict,
        description="registry record: model URI, digest, dataset, training months, cause",
    )
    refused: RefusedVersion | None = None


class Health(BaseModel):
    """Whether this replica can answer match requests."""

    status: Literal["ok", "no model"]
    model_version: str | None


def json_records(frame: Any) -> list[dict[str, Any]]:
    """Rows of a contract frame as request JSON: dates as ISO strings, missing values as null."""
    rows = []
    for row in frame.to_dict("records"):
        clean = {}
        for key, value in row.items():
            if hasattr(value, "date"):
                value = value.date().isoformat()
            elif isinstance(value, float) and value != value:
                value = None
            clean[key] = value
        rows.append(clean)
    return rows


class FieldError(BaseModel):
    """One thing wrong with a request: where (`loc`, from "body" down to the field), what."""

    type: str = Field(description="the kind of error, e.g. missing, greater_than, json_invalid")
    loc: list[str | int] = Field(description='the path to the field, e.g. ["body", "transfer"]')
    msg: str
    input: Any = Field(None, description="a short, JSON-safe part of what was sent, if any")
    ctx: dict[str, str] | None = None


class ValidationProblem(BaseModel):
    """A 422: the request does not satisfy its schema; every field that failed is named."""

    detail: list[FieldError]


class Problem(BaseModel):
    """A 413 (too large) or a 503 (no model loaded yet), in words."""

    detail: str
