"""The matcher's HTTP contract without Ray or a model: validation, limits, error mapping."""

from __future__ import annotations

import asyncio
import copy
import json
import re
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from cashmatch.domain.match_api import (
    BatchMatchRequest,
    BatchMatchResponse,
    Health,
    MatchRequest,
    MatchResponse,
    MatchResult,
    ModelInfo,
)
from cashmatch.entrypoints.matcher.api import Limits, create_api
from cashmatch.service_layer.matcher import NoModelLoaded

pytestmark = pytest.mark.unit

TRANSFER = {
    "transfer_id": "t1",
    "booking_date": "2025-03-04",
    "direction": "incoming",
    "amount": 120.5,
    "currency": "EUR",
    "counterparty_name": "ACME GMBH",
    "counterparty_iban": "DE89370400440532013000",
    "title": "INV-7",
}
INVOICE = {
    "invoice_id": "i1",
    "invoice_number": "INV-7",
    "direction": "receivable",
    "counterparty_id": "cp1",
    "counterparty_name": "Acme GmbH",
    "currency": "EUR",
    "amount": 120.5,
    "issue_date": "2025-02-01",
    "due_date": "2025-03-01",
}


def _request(**changes) -> dict:
    return {"transfer": {**TRANSFER, **changes}, "open_invoices": [INVOICE]}


def test_a_contract_shaped_request_validates():
    request = MatchRequest.model_validate(_request())
    assert request.transfer.amount == 120.5
    assert request.open_invoices[0].open_amount is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": float("inf")}, "amount"),
        ({"currency": "eur"}, "currency"),
        ({"direction": "in"}, "direction"),
        ({"booking_date": "yesterday"}, "booking_date"),
        ({"title": "x" * 1001}, "title"),
        ({"extra": 1}, "extra"),
        ({"amount": True}, "amount"),
        ({"amount": "811.80"}, "amount"),
        ({"transfer_id": "   "}, "transfer_id"),
        ({"transfer_id": "t\x00"}, "transfer_id"),
        ({"transfer_id": "t\n1"}, "transfer_id"),
        # a date is YYYY-MM-DD text: not a Unix time, not a datetime (found by the API's fuzzing)
        ({"booking_date": 0}, "booking_date"),
        ({"booking_date": "2025-03-04T10:00:00"}, "booking_date"),
    ],
)
def test_bad_fields_are_named(changes, field):
    with pytest.raises(ValidationError) as caught:
        MatchRequest.model_validate(_request(**changes))
    assert any(field in map(str, e["loc"]) for e in caught.value.errors())


@pytest.mark.parametrize(
    ("changes", "field", "said"),
    [
        ({"due_date": "2000-01-01"}, "due_date", "is before issue_date"),
    ],
)
def test_an_invoice_that_contradicts_itself_is_named(changes, field, said):
    request = {
        "transfer": TRANSFER,
        "open_invoices": [INVOICE, {**INVOICE, "invoice_id": "i2", **changes}],
    }
    with pytest.raises(ValidationError, match=said) as caught:
        MatchRequest.model_validate(request)
    assert [e["loc"] for e in caught.value.errors()] == [("open_invoices", 1, field)]


def test_an_overpaid_invoice_or_one_with_fees_added_is_taken_as_the_warehouse_gives_it():
    # The warehouse's open amount is amount minus what labels paid: below 0 when overpaid,
    # above the amount when dunning fees were added; both are real and reach the model.
    for open_amount in (-220.0, 0.0, 130.0):
        request = {"transfer": TRANSFER, "open_invoices": [{**INVOICE, "open_amount": open_amount}]}
        assert MatchRequest.model_validate(request).open_invoices[0].open_amount == open_amount


def test_ids_must_be_unique():
    with pytest.raises(ValidationError, match="invoice_id must be unique"):
        MatchRequest.model_validate({"transfer": TRANSFER, "open_invoices": [INVOICE, INVOICE]})
    with pytest.raises(ValidationError, match="transfer_id must be unique"):
        BatchMatchRequest.model_validate(
            {"transfers": [TRANSFER, TRANSFER], "open_invoices": [INVOICE]}
        )


def test_a_credit_note_may_be_negative_but_a_transfer_may_not():
    MatchRequest.model_validate(
        {"transfer": TRANSFER, "open_invoices": [{**INVOICE, "amount": -3}]}
    )
    with pytest.raises(ValidationError):
        MatchRequest.model_validate(_request(amount=-3))


class FakeBackend:
    """Answers like the service would, or fails the way it can."""

    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure

    def _result(self, transfer_id: str) -> MatchResult:
        return MatchResult(
            transfer_id=transfer_id,
            decision="review",
            confidence=0.5,
            proposed_invoice_ids=[],
            allocations=[],
            candidates=[],
        )

    async def match_one(self, request: MatchRequest) -> MatchResponse:
        if self.failure:
            raise self.failure
        result = self._result(request.transfer.transfer_id)
        return MatchResponse(model_version="v1", **result.model_dump())

    async def match_batch(self, request: BatchMatchRequest) -> BatchMatchResponse:
        return BatchMatchResponse(
            model_version="v1", results=[self._result(t.transfer_id) for t in request.transfers]
        )

    def health(self) -> Health:
        return Health(status="no model" if self.failure else "ok", model_version=None)

    def model_info(self) -> ModelInfo:
        return ModelInfo(version=None, requested_version=None)


class _Client:
    """A synchronous face on httpx's in-memory ASGI transport (no server, no socket)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(call())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


def _client(backend=None, **limits) -> _Client:
    return _Client(create_api(backend or FakeBackend(), Limits(**limits)))


def test_routes_answer_and_the_openapi_document_lists_them():
    client = _client()
    assert client.post("/v1/match", json=_request()).json()["transfer_id"] == "t1"
    batch = {"transfers": [TRANSFER, {**TRANSFER, "transfer_id": "t2"}], "open_invoices": []}
    assert len(client.post("/v1/match/batch", json=batch).json()["results"]) == 2
    assert client.get("/v1/health").status_code == 200
    assert "/v1/match/batch" in client.get("/openapi.json").json()["paths"]


def test_a_bad_body_is_422_naming_the_field():
    client = _client()
    bad = _request()
    bad["transfer"] = {**bad["transfer"], "amount": -5}
    answer = client.post("/v1/match", json=bad)
    assert answer.status_code == 422
    assert [e["loc"] for e in answer.json()["detail"]] == [["body", "transfer", "amount"]]
    for garbage in (b"{not json", b"[]", b""):
        answer = client.post("/v1/match/batch", content=garbage)
        assert answer.status_code == 422 and answer.json()["detail"][0]["loc"][0] == "body"


def _with(path: str, value: Any) -> bytes:
    """A single-match body with `value` at `path`, written as JSON that Python's json allows."""
    body = copy.deepcopy(_request())
    *parents, last = path.split(".")
    node: Any = body
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    node[last] = value
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (_with("transfer.amount", float("nan")), ["body", "transfer", "amount"]),
        (_with("transfer.amount", float("inf")), ["body", "transfer", "amount"]),
        (
            _with("open_invoices.0.open_amount", float("-inf")),
            ["body", "open_invoices", 0, "open_amount"],
        ),
        (_with("transfer.amount", 1).replace(b": 1,", b": 1e400,"), ["body", "transfer", "amount"]),
        (json.dumps(_request(title="zé"), ensure_ascii=False).encode("latin-1"), ["body"]),
        ("{}".encode("utf-16"), ["body"]),
        (b'{"transfer": {"title": "\\ud800"}}', ["body"]),
    ],
    ids=["NaN", "Infinity", "-Infinity", "1e400", "latin-1 bytes", "utf-16", "lone surrogate"],
)
def test_numbers_json_cannot_carry_and_bytes_that_are_not_utf8_are_422_not_500(body, loc):
    answer = _client().post("/v1/match", content=body)
    assert answer.status_code == 422, answer.text
    assert loc in [e["loc"] for e in answer.json()["detail"]]


def test_a_422_does_not_echo_a_huge_integer_back():
    huge = b'{"transfer": {"transfer_id": ' + b"9" * 4000 + b'}, "open_invoices": []}'
    answer = _client().post("/v1/match", content=huge)
    assert answer.status_code == 422
    assert len(answer.content) < 2_000


def test_a_422_does_not_echo_the_request_back():
    invoices = [{**INVOICE, "invoice_id": "same"}] * 2_000  # duplicate ids: the list is the input
    answer = _client().post("/v1/match", json={"transfer": TRANSFER, "open_invoices": invoices})
    assert answer.status_code == 422
    assert "invoice_id must be unique" in answer.json()["detail"][0]["msg"]
    assert len(answer.content) < 2_000


def test_the_match_routes_document_their_422_413_and_503():
    """The routes parse their bodies themselves, so FastAPI would not declare the 422 (the API's
    fuzzing found it undocumented)."""
    paths = _client().get("/openapi.json").json()["paths"]
    for path in ("/v1/match", "/v1/match/batch"):
        responses = paths[path]["post"]["responses"]
        assert {"200", "413", "422", "503"} <= set(responses)
        schema = responses["422"]["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith("/ValidationProblem")


def test_the_openapi_document_describes_both_bodies_of_the_match_routes():
    # The match routes parse their bodies themselves (pydantic from the JSON bytes), so the
    # document gets the request models added by hand: every reference must resolve.
    document = _client().get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    for path, request, response in (
        ("/v1/match", "MatchRequest", "MatchResponse"),
        ("/v1/match/batch", "BatchMatchRequest", "BatchMatchResponse"),
    ):
        route = document["paths"][path]["post"]
        body = route["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{request}"}
        answer = route["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer == {"$ref": f"#/components/schemas/{response}"}
    assert {"Transfer", "OpenInvoice", "Candidate"} <= set(schemas)
    refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document))
    assert refs and set(refs) <= set(schemas)
    assert schemas["OpenInvoice"]["properties"]["invoice_id"]["maxLength"] == 128


def test_no_model_is_503_and_a_failing_model_a_500_that_leaks_nothing():
    waiting = _client(FakeBackend(NoModelLoaded("no model is loaded yet")))
    assert waiting.post("/v1/match", json=_request()).status_code == 503
    assert waiting.get("/v1/health").status_code == 503
    broken = _client(FakeBackend(RuntimeError("secret internals")))
    answer = broken.post("/v1/match", json=_request())
    assert answer.status_code == 500 and "secret" not in answer.text


def test_too_many_items_or_bytes_is_413():
    client = _client(max_transfers=1, max_invoices=1, max_body_bytes=2048)
    two = {"transfers": [TRANSFER, {**TRANSFER, "transfer_id": "t2"}], "open_invoices": []}
    answer = client.post("/v1/match/batch", json=two)
    assert answer.status_code == 413 and "transfers" in answer.json()["detail"]
    invoices = [INVOICE, {**INVOICE, "invoice_id": "i2"}]
    answer = client.post("/v1/match", json={"transfer": TRANSFER, "open_invoices": invoices})
    assert answer.status_code == 413 and "open_invoices" in answer.json()["detail"]
    big = client.post(
        "/v1/match", content=b"x" * 4096, headers={"content-type": "application/json"}
    )
    assert big.status_code == 413

    async def chunks():  # no Content-Length: the limit holds while the body streams
        for _ in range(8):
            yield b"x" * 512

    streamed = client.post(
        "/v1/match", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413


# Ray's own modules use pydantic APIs deprecated since 2.0 when first imported.
@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")
@pytest.mark.parametrize(
    "where", ["shared/src/cashmatch/adapters/local/matcher_serve.yaml", "infra/k8s/rayservice.yaml"]
)
def test_the_serve_configs_validate_against_ray_and_matcher_args(where):
    from pathlib import Path

    import yaml
    from ray.serve.schema import ServeDeploySchema

    from cashmatch.entrypoints.matcher.app import MatcherArgs

    text = (Path(__file__).resolve().parents[2] / where).read_text()
    document = next(yaml.safe_load_all(text))
    config = yaml.safe_load(document["spec"]["serveConfigV2"]) if "spec" in document else document
    schema = ServeDeploySchema.model_validate(config)
    (app,) = schema.applications
    assert app.import_path == "cashmatch.entrypoints.matcher.app:build_app"
    MatcherArgs.model_validate(app.args)
    assert set(app.deployments[0].user_config or {}) == {"model_version", "fallback_version"}
