"""The matcher behind HTTP, without Ray: load a registered version safely, swap it, answer.

`MatcherService` is plain Python over the registry and `TrainedMatcher`, so the Ray Serve
replica, a plain FastAPI process and the benchmarks run exactly the same code. A version is
swapped in only after its artifact's digest is verified, it deserializes and it answers a
probe; anything less leaves the serving model in place and is reported as refused.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from services.matcher.schemas import (
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
from shared.contract import INVOICES, TRANSFERS
from shared.matching import TrainedMatcher
from shared.model_store import load_verified
from shared.registry import ModelRecord, ModelRegistry

log = logging.getLogger(__name__)

# Separates a request's index from its ids and currency when single requests share one predict.
_NS = "\x1f"


class NoModelLoaded(Exception):
    """No model version is loaded yet; the service cannot answer."""


class ServingConfig(BaseModel):
    """The Ray Serve `user_config` of the matcher: which version to serve.

    `fallback_version` is what a fresh replica loads when `model_version` is refused, so a
    replica started after a bad roll-out still answers with the version the others keep.
    """

    model_config = ConfigDict(extra="forbid")

    model_version: str | None = None
    fallback_version: str | None = None


@dataclass(frozen=True)
class LoadedModel:
    """A verified model and the registry record it was loaded from."""

    record: ModelRecord
    matcher: TrainedMatcher
    loaded_at: dt.datetime

    @property
    def version(self) -> str:
        """The registry version of this model."""
        return self.record.version


class MatcherService:
    """Holds the serving model; loads, verifies and swaps versions; answers match requests."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
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
        """Serve `config.model_version` if it loads; otherwise keep (or fall back) and say why."""
        with self._loading:
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

        Each request's ids and currency get its index as a suffix: the matcher only pairs a
        transfer with invoices of its own direction and currency, so no request can match
        another's invoices, and the answers equal those of one prediction per request.
        """
        model = self._model()
        if len(requests) == 1:
            transfers = _transfer_frame([requests[0].transfer])
            invoices = _invoice_frame(requests[0].open_invoices)
            results = _results(model.matcher.predict(transfers, invoices), transfers)
        else:
            transfers = _transfer_frame(
                [r.transfer for r in requests], namespaces=list(range(len(requests)))
            )
            invoices = pd.concat(
                [_invoice_frame(r.open_invoices, namespace=k) for k, r in enumerate(requests)],
                ignore_index=True,
            )
            results = [
                _strip(result)
                for result in _results(model.matcher.predict(transfers, invoices), transfers)
            ]
        return [
            MatchResponse(model_version=model.version, **result.model_dump()) for result in results
        ]

    def match_batch(self, request: BatchMatchRequest) -> BatchMatchResponse:
        """Many transfers against one list of open invoices, in one prediction."""
        model = self._model()
        transfers = _transfer_frame(request.transfers)
        predicted = model.matcher.predict(transfers, _invoice_frame(request.open_invoices))
        return BatchMatchResponse(
            model_version=model.version, results=_results(predicted, transfers)
        )


# frames ---------------------------------------------------------------------
def _transfer_frame(
    transfers: Sequence[Transfer], namespaces: Sequence[int] | None = None
) -> pd.DataFrame:
    rows = [t.model_dump() for t in transfers]
    if namespaces is not None:
        for row, k in zip(rows, namespaces, strict=True):
            row["transfer_id"] = f"{row['transfer_id']}{_NS}{k}"
            row["currency"] = f"{row['currency']}{_NS}{k}"
    frame = pd.DataFrame(rows, columns=TRANSFERS.column_names)
    frame["booking_date"] = pd.to_datetime(frame["booking_date"])
    frame["amount"] = frame["amount"].astype("float64")
    return frame


def _invoice_frame(invoices: Sequence[OpenInvoice], namespace: int | None = None) -> pd.DataFrame:
    rows = [i.model_dump() for i in invoices]
    for row in rows:
        if row["open_amount"] is None:
            row["open_amount"] = row["amount"]
        if namespace is not None:
            row["invoice_id"] = f"{row['invoice_id']}{_NS}{namespace}"
            row["currency"] = f"{row['currency']}{_NS}{namespace}"
    frame = pd.DataFrame(rows, columns=[*INVOICES.column_names, "open_amount"])
    for column in ("issue_date", "due_date"):
        frame[column] = pd.to_datetime(frame[column])
    for column in ("amount", "open_amount"):
        frame[column] = frame[column].astype("float64")
    return frame


def _results(predicted: pd.DataFrame, transfers: pd.DataFrame) -> list[MatchResult]:
    """One result per transfer, in the order of `transfers`."""
    score_column = "pair_score" if "pair_score" in predicted.columns else "confidence"
    by_transfer = {str(t): rows for t, rows in predicted.groupby("transfer_id", sort=False)}
    out = []
    for transfer_id in transfers["transfer_id"].astype(str):
        rows = by_transfer.get(transfer_id)
        if rows is None:  # the model owes an answer for every transfer; never guess one
            raise RuntimeError(f"the model returned no row for transfer {transfer_id!r}")
        chosen = rows[rows["invoice_id"].notna()]
        ranked = chosen.sort_values(score_column, ascending=False, kind="stable")
        out.append(
            MatchResult(
                transfer_id=transfer_id,
                decision=str(rows["decision"].iloc[0]),
                confidence=float(rows["confidence"].iloc[0]),
                proposed_invoice_ids=[str(i) for i in chosen["invoice_id"]],
                allocations=[
                    Allocation(invoice_id=str(i), amount=float(a))
                    for i, a in zip(chosen["invoice_id"], chosen["amount"], strict=True)
                ],
                candidates=[
                    Candidate(invoice_id=str(i), score=float(s), proposed=True)
                    for i, s in zip(ranked["invoice_id"], ranked[score_column], strict=True)
                ],
            )
        )
    return out


def _strip(result: MatchResult) -> MatchResult:
    """Drop the request-index suffix from every id of a result."""

    def plain(value: str) -> str:
        return value.rsplit(_NS, 1)[0]

    return MatchResult(
        transfer_id=plain(result.transfer_id),
        decision=result.decision,
        confidence=result.confidence,
        proposed_invoice_ids=[plain(i) for i in result.proposed_invoice_ids],
        allocations=[
            Allocation(invoice_id=plain(a.invoice_id), amount=a.amount) for a in result.allocations
        ],
        candidates=[
            Candidate(invoice_id=plain(c.invoice_id), score=c.score, proposed=c.proposed)
            for c in result.candidates
        ],
    )


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
    transfers = _transfer_frame([probe.transfer])
    predicted = matcher.predict(transfers, _invoice_frame(probe.open_invoices))
    results = _results(predicted, transfers)
    if len(results) != 1 or not np.isfinite(results[0].confidence):
        raise ValueError("the model's answer to a probe request is malformed")
