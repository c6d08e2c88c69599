"""The replica's dynamic batching: merged requests that fail together are answered one by one,
so one bad request fails only its own caller. Runs the batch handler's own code, without Ray."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from cashmatch.domain.match_api import MatchRequest, MatchResponse
from cashmatch.service_layer.matcher import NoModelLoaded
from tests.unit.test_matcher_schemas import INVOICE, TRANSFER

pytestmark = [
    pytest.mark.unit,
    # Ray's own modules use pydantic APIs deprecated since 2.0 when first imported.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
]


def _replica_class():
    """The deployment class under Serve's wrappers (imported here: importing Ray warns)."""
    from cashmatch.entrypoints.matcher.app import MatcherDeployment

    return MatcherDeployment.func_or_class.__wrapped__


def _request(transfer_id: str) -> MatchRequest:
    return MatchRequest.model_validate(
        {"transfer": {**TRANSFER, "transfer_id": transfer_id}, "open_invoices": [INVOICE]}
    )


class Service:
    """Fails every call that includes the transfer "poison"; `missing` means no model yet."""

    def __init__(self, missing: bool = False) -> None:
        self.missing = missing
        self.calls: list[list[str]] = []

    def _answer(self, request: MatchRequest) -> MatchResponse:
        if self.missing:
            raise NoModelLoaded("no model is loaded yet")
        if request.transfer.transfer_id == "poison":
            raise ValueError("the model cannot take this one")
        return MatchResponse(
            model_version="v1",
            transfer_id=request.transfer.transfer_id,
            decision="review",
            confidence=0.5,
            proposed_invoice_ids=[],
            allocations=[],
            candidates=[],
        )

    def match_many(self, requests: list[MatchRequest]) -> list[MatchResponse]:
        self.calls.append([r.transfer.transfer_id for r in requests])
        return [self._answer(r) for r in requests]

    def match(self, request: MatchRequest) -> MatchResponse:
        self.calls.append([request.transfer.transfer_id])
        return self._answer(request)


def _batched(service: Service, ids: list[str]) -> list[MatchResponse | Exception]:
    """The replica's batch handler itself (under @serve.batch) on these requests."""
    cls = _replica_class()
    replica = SimpleNamespace(_args=SimpleNamespace(inline_max_invoices=10_000), _service=service)
    replica._alone = lambda request: cls._alone(replica, request)
    handler = vars(cls)["_batched"].__wrapped__
    return asyncio.run(handler(replica, [_request(i) for i in ids]))


def test_one_bad_request_fails_only_its_own_caller():
    service = Service()
    answers = _batched(service, ["a", "poison", "b"])
    assert [a.transfer_id for a in answers if isinstance(a, MatchResponse)] == ["a", "b"]
    assert isinstance(answers[1], ValueError)
    assert service.calls[0] == ["a", "poison", "b"]  # merged first, then each alone
    assert sorted(service.calls[1:]) == [["a"], ["b"], ["poison"]]


def test_a_merged_batch_that_works_is_one_call():
    service = Service()
    assert [a.transfer_id for a in _batched(service, ["a", "b"])] == ["a", "b"]
    assert service.calls == [["a", "b"]]


def test_a_lone_request_and_a_missing_model_raise_as_they_are():
    with pytest.raises(ValueError, match="cannot take"):
        _batched(Service(), ["poison"])
    service = Service(missing=True)
    with pytest.raises(NoModelLoaded):
        _batched(service, ["a", "b"])
    assert service.calls == [["a", "b"]]  # not retried one by one: the answer would be the same
