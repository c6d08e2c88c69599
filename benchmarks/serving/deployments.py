"""The Ray Serve applications measured beside the matcher's own (LocalRayServing's), and waits.

  (a)  a no-op deployment on /noop: the price of Serve's proxy hop alone;
  (a2) the matcher's own ingress on /noop-validated over a backend without a model: parsing,
       validation and an answer of the matcher's size, everything of (b) but the model;
  the matcher again through `serve.run` on /run, so a model swap can be measured both ways:
  a config update in place and `serve.run` again (replicas replaced).
The no-ops reserve a tenth of a CPU each and the /run matcher a quarter (Ray's scheduling, not
a limit), so that all fit on the local head beside the matcher's replicas.
"""

from __future__ import annotations

import time
from pathlib import Path


def deploy_noop() -> None:
    """(a): a Serve deployment that parses nothing and answers {} on /noop."""
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    from cashmatch.entrypoints.matcher.app import keep_replica_ports_on_loopback

    @serve.deployment(name="Noop", ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=256)
    class Noop:
        def __init__(self) -> None:
            keep_replica_ports_on_loopback()

        async def __call__(self, request: Request) -> JSONResponse:
            await request.body()
            return JSONResponse({})

    serve.run(Noop.bind(), name="noop", route_prefix="/noop", blocking=False)  # type: ignore[attr-defined]


def deploy_validating_noop() -> None:
    """(a2): the matcher's own ingress (create_api) over a backend without a model.

    It parses and validates the body and writes an answer of the matcher's size (the first
    ten invoices as candidates): everything of (b) but the model and dynamic batching.
    """
    from ray import serve

    from cashmatch.domain.match_api import Candidate, MatchResponse
    from cashmatch.entrypoints.matcher.api import Limits, create_api
    from cashmatch.entrypoints.matcher.app import keep_replica_ports_on_loopback

    @serve.deployment(
        name="ValidatingNoop", ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=256
    )
    @serve.ingress()
    class ValidatingNoop:
        def __init__(self) -> None:
            keep_replica_ports_on_loopback()

        def __serve_build_asgi_app__(self):
            return create_api(self, Limits())

        async def match_one(self, request):
            candidates = [
                Candidate(invoice_id=i.invoice_id, score=0.5, proposed=False)
                for i in request.open_invoices[:10]
            ]
            return MatchResponse(
                transfer_id=request.transfer.transfer_id,
                decision="review",
                confidence=0.5,
                proposed_invoice_ids=[],
                allocations=[],
                candidates=candidates,
                model_version="none",
            )

        async def match_batch(self, request):
            raise NotImplementedError("single matches only")

        def health(self):
            raise NotImplementedError

        def model_info(self):
            raise NotImplementedError

    app = ValidatingNoop.bind()  # type: ignore[attr-defined]
    serve.run(app, name="noop-validated", route_prefix="/noop-validated", blocking=False)


def deploy_imperative(blob_root: Path, version: str) -> None:
    """The matcher again, through `serve.run` (each call a new code version) on /run."""
    from ray import serve

    from cashmatch.entrypoints.matcher.app import MatcherArgs, build_app

    args = MatcherArgs(
        blob_root=str(blob_root),
        model_version=version,
        replica_cpus=0.25,
        autoscaling={"min_replicas": 1, "max_replicas": 1},
    )
    serve.run(build_app(args), name="matcher-run", route_prefix="/run", blocking=False)


def redeploy_imperative(blob_root: Path, version: str) -> None:
    """`serve.run` the /run app again with another version, and wait until it runs."""
    deploy_imperative(blob_root, version)
    wait_app("matcher-run")


def replica_ids(app: str) -> list[str]:
    """Running replica ids of the one deployment of `app`."""
    from ray.serve.context import _get_global_client

    client = _get_global_client()
    assert client is not None
    deployments = client.get_serve_details()["applications"][app]["deployments"]
    return sorted(
        r["replica_id"]
        for d in deployments.values()
        for r in d["replicas"]
        if r.get("state") == "RUNNING"
    )


def wait_replicas_settled(app: str, seconds: float = 120) -> None:
    """Until every replica of `app` is RUNNING (none starting or stopping)."""
    from ray.serve.context import _get_global_client

    client = _get_global_client()
    assert client is not None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        deployments = client.get_serve_details()["applications"][app]["deployments"]
        states = [r.get("state") for d in deployments.values() for r in d["replicas"]]
        if states and all(state == "RUNNING" for state in states):
            return
        time.sleep(0.5)
    raise TimeoutError(f"replicas of {app} did not settle")


def wait_app(app: str, seconds: float = 180) -> None:
    """Until a Serve application is RUNNING."""
    from ray import serve

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = serve.status().applications.get(app)
        if status is not None and str(status.status).endswith("RUNNING"):
            return
        time.sleep(0.3)
    raise TimeoutError(app)
