"""The matcher as a Ray Serve application: `build_app(MatcherArgs)`.

One deployment, `Matcher`, with the FastAPI app of cashmatch.entrypoints.matcher.api as its
ingress. The model version arrives through `user_config` (a `ServingConfig`) and
`reconfigure()`: the replica loads and verifies the new version in a worker thread while the old
one keeps answering, then swaps. Changing only `user_config` in a deployed config is a
lightweight update in Ray Serve: the replicas stay, nothing restarts (see
services/matcher/README.md)."""

# No `from __future__ import annotations` here: Ray Serve reads build_app's annotation at run
# time to validate a config's `args` into MatcherArgs, and a string annotation defeats that.
import asyncio
import logging
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import Application
from ray.serve.deployment import Deployment

from cashmatch.adapters.matcher_app import DEPLOYMENT_NAME
from cashmatch.domain.match_api import (
    BatchMatchRequest,
    BatchMatchResponse,
    Health,
    MatchRequest,
    MatchResponse,
    ModelInfo,
)
from cashmatch.entrypoints.matcher.api import Limits, create_api
from cashmatch.service_layer.matcher import MatcherService, NoModelLoaded, ServingConfig
from cashmatch.service_layer.registry import ModelRegistry

log = logging.getLogger(__name__)


class Autoscaling(BaseModel):
    """Ray Serve autoscaling of the matcher replicas (its `autoscaling_config`)."""

    model_config = ConfigDict(extra="forbid")

    min_replicas: int = Field(1, ge=1)
    max_replicas: int = Field(2, ge=1)
    target_ongoing_requests: float = Field(8, gt=0)
    upscale_delay_s: float = Field(5.0, ge=0)
    downscale_delay_s: float = Field(60.0, ge=0)


class MatcherArgs(BaseModel):
    """Arguments of the application builder (the `args` of a Serve config)."""

    model_config = ConfigDict(extra="forbid")

    store: Literal["local", "gcs"] = Field(
        "local", description="where the registry lives: a directory, or a Cloud Storage bucket"
    )
    blob_root: str = Field("", description="local: the blob store directory (workspace/blobs)")
    bucket: str = Field("", description="gcs: the bucket holding the registry")
    prefix: str = Field("", description="gcs: folder of the bucket the blob store lives in")
    model_version: str | None = Field(
        None, description="version served at start; a deployed config's user_config overrides"
    )
    limits: Limits = Field(default_factory=Limits)
    max_batch_size: int = Field(16, ge=1, description="single requests merged in one predict")
    # 0: a lone request goes at once; under load requests still merge, because those arriving
    # while a batch is being answered wait for the next one (measured: p50 at concurrency 1
    # 26 ms with 5 ms of waiting, 17 ms without; the same throughput at concurrency 16).
    batch_wait_timeout_s: float = Field(0.0, ge=0, description="how long a batch waits to fill")
    inline_max_invoices: int = Field(
        2_000,
        ge=0,
        description="merged single requests with at most this many open invoices in all run on"
        " the replica's event loop; larger ones in a worker thread, so the loop stays responsive",
    )
    max_candidates: int = Field(10, ge=0, description="ranked candidates listed per answer")
    max_ongoing_requests: int = Field(64, ge=1)
    replica_cpus: float = Field(0.5, gt=0, description="Ray CPUs reserved per replica")
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)


def keep_replica_ports_on_loopback() -> None:
    """On a loopback-only node, bind the replica's internal gRPC port to 127.0.0.1 too.

    Ray Serve 2.60 replicas open an inter-deployment gRPC server on "[::]:0", every interface,
    whatever the node IP; callers reach it at the node IP, so on a 127.0.0.1 node loopback
    is enough. Called from a replica's constructor, which runs before that server starts.
    """
    import ray
    from ray.serve._private import replica as replica_module

    original = replica_module.add_port_to_grpc_server
    if ray.util.get_node_ip_address() != "127.0.0.1" or getattr(original, "loopback", False):
        return

    def on_loopback(server: Any, address: str) -> int:
        return original(server, "127.0.0.1:0" if address == "[::]:0" else address)

    on_loopback.loopback = True  # type: ignore[attr-defined]
    replica_module.add_port_to_grpc_server = on_loopback


def registry_for(args: MatcherArgs) -> ModelRegistry:
    """The model registry the replicas read versions from."""
    if args.store == "local":
        if not args.blob_root:
            raise ValueError("MatcherArgs.blob_root is required for store=local")
        from cashmatch.adapters.local.blobstore import DirectoryBlobStore

        return ModelRegistry(DirectoryBlobStore(Path(args.blob_root)))
    if not args.bucket:
        raise ValueError("MatcherArgs.bucket is required for store=gcs")
    from google.cloud import storage

    from cashmatch.adapters.gcp.blobstore import GcsBlobStore

    # On GKE the client finds its credentials through Workload Identity; nothing to pass.
    return ModelRegistry(GcsBlobStore(storage.Client(), args.bucket, args.prefix))


@serve.deployment(name=DEPLOYMENT_NAME, health_check_period_s=10, health_check_timeout_s=30)
@serve.ingress()
class MatcherDeployment:
    """A replica: one MatcherService, its HTTP app, dynamic batching of single requests."""

    def __init__(self, args: MatcherArgs) -> None:
        keep_replica_ports_on_loopback()
        self._args = args
        self._service = MatcherService(registry_for(args), max_candidates=args.max_candidates)
        batching: Any = self._batched  # serve.batch's wrapper carries these setters
        batching.set_max_batch_size(args.max_batch_size)
        batching.set_batch_wait_timeout_s(args.batch_wait_timeout_s)

    def __serve_build_asgi_app__(self) -> FastAPI:
        """The ingress app, built on the replica with this replica as its backend."""
        return create_api(self, self._args.limits)

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Load the configured version off the event loop, then swap; never raise on refusal.

        Raising here would make Ray replace the replica, which starts with the same bad
        version and no model at all; refusing keeps the old model answering instead.
        """
        try:
            config = ServingConfig.model_validate(user_config or {})
        except ValueError as exc:
            log.error("ignored an invalid user_config %r: %s", user_config, exc)
            return
        outcome = await asyncio.to_thread(self._service.apply, config)
        log.info("reconfigure: %s", outcome)

    def check_health(self) -> None:
        """Alive is healthy: a replica without a model answers 503, it is not restarted."""

    # the backend of cashmatch.entrypoints.matcher.api -----------------------------------------
    def match(self, request: MatchRequest) -> MatchResponse:
        """The plain model call: one transfer against its open invoices."""
        return self._service.match(request)

    async def match_one(self, request: MatchRequest) -> MatchResponse:
        """One request, merged with those arriving at the same moment."""
        answer = await self._batched(request)
        if isinstance(answer, Exception):
            raise answer
        return answer

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.0)
    async def _batched(self, requests: list[MatchRequest]) -> list[MatchResponse | Exception]:
        try:
            if sum(len(r.open_invoices) for r in requests) <= self._args.inline_max_invoices:
                # A few ms of Python: a worker thread would add its hand-over (~1 ms at c=1,
                # measured) and gain nothing, as the model holds the GIL while it runs.
                return list(self._service.match_many(requests))
            return list(await asyncio.to_thread(self._service.match_many, requests))
        except NoModelLoaded:
            raise
        except Exception:
            if len(requests) == 1:
                raise
            # One bad request must not fail the others merged with it: answer each alone.
            log.warning("a merged batch of %d failed; answering one by one", len(requests))
        return list(await asyncio.gather(*(self._alone(r) for r in requests)))

    async def _alone(self, request: MatchRequest) -> MatchResponse | Exception:
        try:
            return await asyncio.to_thread(self._service.match, request)
        except Exception as exc:  # handed back to that request's caller only
            return exc

    async def match_batch(self, request: BatchMatchRequest) -> BatchMatchResponse:
        """Many transfers against one list of open invoices."""
        return await asyncio.to_thread(self._service.match_batch, request)

    def health(self) -> Health:
        """Whether a model is loaded."""
        return self._service.health()

    def model_info(self) -> ModelInfo:
        """The serving version and its registry record."""
        return self._service.model_info()


def build_app(args: MatcherArgs) -> Application:
    """The Serve application for `args` (the builder a Serve config's import_path names)."""
    registry_for(args)  # fail at build time, not in every replica, on a bad store
    deployment: Deployment = MatcherDeployment  # type: ignore[assignment]
    deployment = deployment.options(
        user_config=ServingConfig(model_version=args.model_version).model_dump(),
        max_ongoing_requests=args.max_ongoing_requests,
        autoscaling_config=args.autoscaling.model_dump(),
        ray_actor_options={"num_cpus": args.replica_cpus},
    )
    return deployment.bind(args)
