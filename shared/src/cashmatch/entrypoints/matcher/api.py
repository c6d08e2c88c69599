"""The matcher's HTTP face: a FastAPI app over any backend that can match and report status.

Routes only translate HTTP to the backend's methods (STYLE.md item 3). The same app runs as
the Ray Serve ingress and, for comparison, under plain uvicorn. Oversize bodies are refused
with 413 before they are parsed; invalid ones get FastAPI's 422, whose `loc` names the field.

Match bodies are parsed by pydantic straight from the JSON bytes and answers written by
pydantic too: FastAPI's own path (json.loads, validate the objects, validate and encode the
answer again, json.dumps) cost 0.2 s of a 0.75 s batch of 1,000 transfers. The OpenAPI
document still shows both models (`_body_schema`, `response_model`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cashmatch.domain.match_api import (
    BatchMatchRequest,
    BatchMatchResponse,
    Health,
    MatchRequest,
    MatchResponse,
    ModelInfo,
    Problem,
    ValidationProblem,
)
from cashmatch.service_layer.matcher import MatcherService, NoModelLoaded

log = logging.getLogger(__name__)
T = TypeVar("T")
Body = TypeVar("Body", bound=BaseModel)
_REQUEST_MODELS: tuple[type[BaseModel], ...] = (MatchRequest, BatchMatchRequest)


class Limits(BaseModel):
    """Request size limits; anything larger is answered 413."""

    max_transfers: int = Field(5_000, ge=1, description="transfers in one batch request")
    max_invoices: int = Field(50_000, ge=1, description="open invoices in one request")
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="request body size")


class MatcherBackend(Protocol):
    """What the routes need: matching (async, so a backend may batch) and status."""

    async def match_one(self, request: MatchRequest) -> MatchResponse: ...

    async def match_batch(self, request: BatchMatchRequest) -> BatchMatchResponse: ...

    def health(self) -> Health: ...

    def model_info(self) -> ModelInfo: ...


class ThreadedBackend:
    """A MatcherBackend over a MatcherService in this process: each match runs in a worker
    thread, as the Serve replica runs large ones. For the app without Ray (a plain uvicorn
    server, a member's smoke run, the API's fuzzing)."""

    def __init__(self, service: MatcherService) -> None:
        self.service = service

    async def match_one(self, request: MatchRequest) -> MatchResponse:
        return await asyncio.to_thread(self.service.match, request)

    async def match_batch(self, request: BatchMatchRequest) -> BatchMatchResponse:
        return await asyncio.to_thread(self.service.match_batch, request)

    def health(self) -> Health:
        return self.service.health()

    def model_info(self) -> ModelInfo:
        return self.service.model_info()


def create_api(backend: MatcherBackend, limits: Limits) -> FastAPI:
    """The FastAPI app of the matcher, with its routes bound to `backend`."""
    api = FastAPI(
        title="cashmatch matcher",
        version="1",
        description="Which open invoices a bank transfer pays, how much of each, how sure.",
    )

    def match_route(path: str, body: type[BaseModel], answer: type[BaseModel]) -> Any:
        """A POST route that parses `body` itself (`_parsed`) and answers `answer`."""
        return api.post(
            path,
            response_model=answer,
            responses={
                413: {"model": Problem, "description": "request too large"},
                422: {"model": ValidationProblem, "description": "the fields that failed"},
                503: {"model": Problem, "description": "no model loaded yet"},
            },
            openapi_extra=_body_schema(body),
        )

    @match_route("/v1/match", MatchRequest, MatchResponse)
    async def match(http: Request) -> Response:
        """Match one transfer against the open invoices sent with it."""
        request = _parsed(MatchRequest, await http.body())
        _check_count("open_invoices", len(request.open_invoices), limits.max_invoices)
        return _json(await _answer(backend.match_one(request)))

    @match_route("/v1/match/batch", BatchMatchRequest, BatchMatchResponse)
    async def match_batch(http: Request) -> Response:
        """Match many transfers against one list of open invoices."""
        request = _parsed(BatchMatchRequest, await http.body())
        _check_count("transfers", len(request.transfers), limits.max_transfers)
        _check_count("open_invoices", len(request.open_invoices), limits.max_invoices)
        return _json(await _answer(backend.match_batch(request)))

    @api.get("/v1/health", responses={503: {"model": Health}})
    def health() -> JSONResponse:
        """200 once a model is loaded, 503 before."""
        state = backend.health()
        return JSONResponse(state.model_dump(), status_code=200 if state.status == "ok" else 503)

    @api.get("/v1/model")
    def model() -> ModelInfo:
        """The serving version, its training metrics and lineage, and any refused version."""
        return backend.model_info()

    api.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    api.openapi = lambda: _openapi(api)  # type: ignore[method-assign]
    return api


def _parsed(model: type[Body], body: bytes) -> Body:
    """The body validated from its JSON bytes; a 422 naming the field (`body`, ...) if not."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError([_error(e) for e in exc.errors(include_url=False)]) from None


# An error echoes a short, JSON-safe `input` only: a NaN, undecodable bytes or a whole list
# of invoices must not turn the 422 into a 500 or a copy of the request.
_ECHO_MAX_CHARS = 200


def _error(error: Any) -> dict[str, Any]:
    entry = {"type": error["type"], "loc": ("body", *error["loc"]), "msg": error["msg"]}
    value = error.get("input")
    if isinstance(value, bool) or (isinstance(value, float) and math.isfinite(value)):
        entry["input"] = value
    elif isinstance(value, int):  # a JSON integer can have thousands of digits
        entry["input"] = value if len(str(value)) <= _ECHO_MAX_CHARS else str(value)[:20] + "…"
    elif isinstance(value, str):
        entry["input"] = value[:_ECHO_MAX_CHARS]
    if error.get("ctx"):
        entry["ctx"] = {k: str(v)[:_ECHO_MAX_CHARS] for k, v in error["ctx"].items()}
    return entry


def _json(answer: BaseModel) -> Response:
    return Response(answer.model_dump_json(), media_type="application/json")


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads its body itself (see `_parsed`)."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _openapi(api: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the request models the match routes parse themselves."""
    if api.openapi_schema is None:
        document = get_openapi(
            title=api.title, version=api.version, description=api.description, routes=api.routes
        )
        _, definitions = models_json_schema(
            [(model, "validation") for model in _REQUEST_MODELS],
            ref_template="#/components/schemas/{model}",
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in definitions.get("$defs", {}).items():
            schemas.setdefault(name, schema)
        api.openapi_schema = document
    return api.openapi_schema


async def _answer(pending: Awaitable[T]) -> T:
    """Await a backend call; no model is 503, a failure inside the model a logged 500."""
    try:
        return await pending
    except NoModelLoaded as exc:
        raise HTTPException(503, str(exc)) from None
    except Exception:
        log.exception("the matcher failed on a request")
        raise HTTPException(500, "the matcher failed on this request; it was logged") from None


def _check_count(field: str, count: int, limit: int) -> None:
    if count > limit:
        raise HTTPException(413, f"{field}: {count} items, at most {limit} per request")


class BodyLimit:
    """ASGI middleware: 413 for a body over `max_bytes`, by Content-Length or while it streams.

    The body is read here (bounded) and replayed to the app, so a client cannot make a
    replica buffer more than `max_bytes` by lying about, or leaving out, Content-Length.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass through non-HTTP traffic; buffer and check request bodies."""
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body larger than {self.max_bytes} bytes"}, status_code=413
        )
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
