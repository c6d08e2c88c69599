"""The matcher behind HTTP, without Ray: load a registered version safely, swap it, answer.

`MatcherService` is plain Python over the registry and `TrainedMatcher`, so the Ray Serve
replica, a plain FastAPI process and the benchmarks run exactly the same code. A version is
swapped in only after its artifact's digest is verified, it deserializes and it answers a
probe; anything less leaves the serving model in place and is reported as refused.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cashmatch.domain.contract import INVOICES, TRANSFERS
from cashmatch.domain.match_api import (
    Allocation,
    BatchMatchRequest,
    BatchMatchResponse,
    Candidate,
    Health,
    MatchRequest,
    MatchResponse,
    MatchResult,
    ModelInfo,
    OpenInvoice,
    RefusedVersion,
    Transfer,
)
from cashmatch.domain.matching import Answer, TrainedMatcher
from cashmatch.domain.matching.tables import Columns
from cashmatch.domain.model_records import ModelRecord
from cashmatch.service_layer.model_store import load_verified
from cashmatch.service_layer.registry import ModelRegistry

log = logging.getLogger(__name__)

# Scored candidates listed per answer (best first); the proposed invoices are always listed.
DEFAULT_MAX_CANDIDATES = 10


class NoModelLoaded(Exception):
    """No model version is loaded yet; the service cannot answer."""


class ServingConfig(BaseModel):
    """The Ray Serve `user_config` of the matcher: which version to serve, at which threshold.

    `fallback_version` is what a fresh replica loads when `model_version` is refused, so a
    replica started after a bad roll-out still answers with the version the others keep.
    `threshold` is the guardrail's override for `model_version` (None: the model's own); it
    travels in the same config, so a replica started later (a restart, a scale-up) starts with it.
    """

    model_config = ConfigDict(extra="forbid")

    model_version: str | None = None
    fallback_version: str | None = None
    threshold: float | None = Field(None, ge=0.0)
    threshold_source: str | None = None


@dataclass(frozen=True)
class LoadedModel:
    """A verified model and the registry record it was loaded from."""

    record: ModelRecord
    matcher: TrainedMatcher
    loaded_at: dt.datetime
    own_threshold: float | None = None  # the model's calibrated one; None: the matcher's
    threshold_source: str = "model"

    def __post_init__(self) -> None:
        if self.own_threshold is None:
            object.__setattr__(self, "own_threshold", self.matcher.threshold)

    def at(self, threshold: float | None, source: str | None) -> LoadedModel:
        """This model deciding at `threshold` (None: its own calibrated threshold)."""
        if threshold is None:
            if self.threshold_source == "model":
                return self
            assert self.own_threshold is not None  # set in __post_init__
            threshold, source = self.own_threshold, "model"
        elif threshold == self.matcher.threshold and source == self.threshold_source:
            return self
        return dataclasses.replace(
            self,
            matcher=self.matcher.at_threshold(threshold),
            threshold_source=source or "override",
        )

    @property
    def version(self) -> str:
        """The registry version of this model."""
        return self.record.version


class MatcherService:
    """Holds the serving model; loads, verifies and swaps versions; answers match requests."""

    def __init__(
        self, registry: ModelRegistry, max_candidates: int = DEFAULT_MAX_CANDIDATES
    ) -> None:
        if max_candidates < 0:
            raise ValueError("max_candidates must be 0 or more")
        self.registry = registry
        self.max_candidates = max_candidates
        self._current: LoadedModel | None = None
        self._requested: str | None = None
        self._refused: RefusedVersion | None = None
        # One load at a time; requests never take this lock, they read `_current` once.
        self._loading = threading.Lock()

    # versions ---------------------------------------------------------------
    @property
    def current(self) -> LoadedModel | None:
        """The model answering now, or None before the first load."""
        return self._current

    def load(self, version: str) -> LoadedModel:
        """Read the record, verify and load the artifact, probe it; raise on any failure."""
        record = self.registry.get(version)
        matcher = load_verified(self.registry.blobs, record)
        _probe(matcher)
        return LoadedModel(record, matcher, dt.datetime.now(dt.UTC))

    def apply(self, config: ServingConfig) -> str:
        """Serve `config.model_version` if it loads; otherwise keep (or fall back) and say why.
        The threshold override applies to that version only, never to a kept or fallback one."""
        with self._loading:
            outcome = self._apply_version(config)
            current = self._current
            if current is not None:
                if current.version == config.model_version:
                    self._current = current.at(config.threshold, config.threshold_source)
                else:
                    self._current = current.at(None, None)
                if self._current.threshold_source != "model":
                    outcome += f" at threshold {self._current.matcher.threshold:.4f}"
            return outcome

    def _apply_version(self, config: ServingConfig) -> str:
        wanted = config.model_version
        self._requested = wanted
        current = self._current
        if wanted is None or (current is not None and current.version == wanted):
            self._refused = None
            return f"serving {current.version if current else 'nothing'}"
        try:
            self._current = self.load(wanted)
        except Exception as exc:  # any failure to load is a refusal, never a crash
            reason = f"{type(exc).__name__}: {exc}"
            self._refused = RefusedVersion(
                version=wanted, reason=reason, at=dt.datetime.now(dt.UTC)
            )
            log.error("refused model %s: %s", wanted, reason)
            if current is None and config.fallback_version:
                self._current = self._try_fallback(config.fallback_version)
            kept = self._current.version if self._current else "nothing"
            return f"refused {wanted} ({reason}); serving {kept}"
        self._refused = None
        log.info("now serving model %s", wanted)
        return f"serving {wanted}"

    def _try_fallback(self, version: str) -> LoadedModel | None:
        try:
            return self.load(version)
        except Exception as exc:  # the fallback failing too leaves the replica without a model
            log.error("fallback model %s refused too: %s", version, exc)
            return None

    # status -----------------------------------------------------------------
    def health(self) -> Health:
        """ok once a model is loaded."""
        current = self._current
        if current is None:
            return Health(status="no model", model_version=None)
        return Health(status="ok", model_version=current.version)

    def model_info(self) -> ModelInfo:
        """The serving version, its metrics and lineage, and any refused version."""
        current = self._current
        if current is None:
            return ModelInfo(version=None, requested_version=self._requested, refused=self._refused)
        record = current.record
        return ModelInfo(
            version=record.version,
            requested_version=self._requested,
            loaded_at=current.loaded_at,
            threshold=current.matcher.threshold,
            threshold_source=current.threshold_source,
            training_metrics=record.training_metrics,
            lineage=record.model_dump(
                mode="json",
                include={
                    "model_uri",
                    "artifact_digest",
                    "dataset_uri",
                    "dataset_version",
                    "training_months",
                    "created_at",
                    "caused_by",
                },
            ),
            refused=self._refused,
        )

    # matching ---------------------------------------------------------------
    def _model(self) -> LoadedModel:
        current = self._current
        if current is None:
            raise NoModelLoaded("no model is loaded yet")
        return current

    def match(self, request: MatchRequest) -> MatchResponse:
        """One transfer against its open invoices."""
        return self.match_many([request])[0]

    def match_many(self, requests: Sequence[MatchRequest]) -> list[MatchResponse]:
        """Several independent single requests in one prediction (what dynamic batching uses).

        Each request is blocked against its own open invoices, then features, both models and
        settlement run once for all; every answer equals that of the request alone.
        """
        model = self._model()
        tables = [
            (_transfer_columns([r.transfer]), _invoice_columns(r.open_invoices)) for r in requests
        ]
        if len(tables) == 1:  # the same answer, without stacking one request onto nothing
            answers = [model.matcher.answers(*tables[0])]
        else:
            answers = model.matcher.answers_many(tables)
        return [
            # dict(): the nested models as they are; model_dump would rebuild and revalidate them
            MatchResponse(model_version=model.version, **dict(result))
            for mine in answers
            for result in _results(mine, self.max_candidates)
        ]

    def match_batch(self, request: BatchMatchRequest) -> BatchMatchResponse:
        """Many transfers against one list of open invoices, in one prediction."""
        model = self._model()
        transfers = _transfer_columns(request.transfers)
        answers = model.matcher.answers(transfers, _invoice_columns(request.open_invoices))
        if [a.transfer_id for a in answers] != [t.transfer_id for t in request.transfers]:
            # the model owes one answer per transfer, in order; never hand out a guess
            raise RuntimeError("the model's answers do not match the request's transfers")
        return BatchMatchResponse(
            model_version=model.version, results=_results(answers, self.max_candidates)
        )


# columns --------------------------------------------------------------------
# Built column by column from the validated models, as numpy arrays: a DataFrame costs more
# than blocking the request (cashmatch.domain.matching.tables.Columns).
_DATES = frozenset({"booking_date", "issue_date", "due_date"})
_MONEY = frozenset({"amount", "open_amount"})


def _column(name: str, values: list) -> np.ndarray:
    if name in _DATES:
        return np.array(values, dtype="datetime64[D]")
    if name in _MONEY:
        return np.array(values, dtype=np.float64)
    column = np.empty(len(values), dtype=object)  # np.array would split tuples, guess types
    column[:] = values
    return column


def _transfer_columns(transfers: Sequence[Transfer]) -> Columns:
    return Columns(
        {c: _column(c, [getattr(t, c) for t in transfers]) for c in TRANSFERS.column_names}
    )


def _invoice_columns(invoices: Sequence[OpenInvoice]) -> Columns:
    """Open invoices as the contract's columns plus `open_amount` (the amount when not given)."""
    columns = {c: _column(c, [getattr(i, c) for i in invoices]) for c in INVOICES.column_names}
    opens = [i.amount if i.open_amount is None else i.open_amount for i in invoices]
    columns["open_amount"] = _column("open_amount", opens)
    return Columns(columns)


def _results(answers: list[Answer], top: int) -> list[MatchResult]:
    """The HTTP shape of the model's answers: the `top` best candidates and every proposed one."""
    return [
        MatchResult(
            transfer_id=answer.transfer_id,
            decision=answer.decision,
            confidence=answer.confidence,
            proposed_invoice_ids=answer.invoice_ids,
            allocations=[
                Allocation(invoice_id=i, amount=a, reasons=list(r.codes), why=r.why)
                for i, a, r in zip(answer.invoice_ids, answer.amounts, answer.reasons, strict=True)
            ],
            candidates=[
                Candidate(invoice_id=i, score=score, proposed=proposed)
                for rank, (i, score, proposed) in enumerate(answer.candidates, start=1)
                if rank <= top or proposed
            ],
        )
        for answer in answers
    ]


def _probe(matcher: TrainedMatcher) -> None:
    """A loaded model must answer one plain request before it may serve."""
    probe = MatchRequest.model_validate(
        {
            "transfer": {
                "transfer_id": "probe",
                "booking_date": "2025-01-15",
                "direction": "incoming",
                "amount": 100.0,
                "currency": "EUR",
                "title": "INV-1",
            },
            "open_invoices": [
                {
                    "invoice_id": "probe-invoice",
                    "invoice_number": "INV-1",
                    "direction": "receivable",
                    "counterparty_id": "probe-cp",
                    "counterparty_name": "Probe Ltd",
                    "currency": "EUR",
                    "amount": 100.0,
                    "issue_date": "2025-01-01",
                    "due_date": "2025-01-31",
                }
            ],
        }
    )
    answers = matcher.answers(
        _transfer_columns([probe.transfer]), _invoice_columns(probe.open_invoices)
    )
    results = _results(answers, DEFAULT_MAX_CANDIDATES)
    if len(results) != 1 or not np.isfinite(results[0].confidence):
        raise ValueError("the model's answer to a probe request is malformed")
