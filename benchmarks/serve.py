"""Serving benchmark: real HTTP on 127.0.0.1, printed tables (not a timed test).

    .venv/bin/python benchmarks/serve.py [--quick] [--seconds 6]

In one run, on one machine, the same model behind four paths:
  (a) a no-op Ray Serve deployment (the price of Serve's proxy hop alone),
  (a2) the matcher's own ingress (parsing, validation, answer) over a backend without a model,
  (b) the matcher on Ray Serve (LocalRayServing, the app of services/matcher),
  (c) the same FastAPI app and model under plain uvicorn (one process, no Ray),
  (d) the matcher called in-process (no HTTP at all).
Measured: requests/s and p50/p99 latency of single matches (50 open invoices) at concurrency
1, 16 and 64; transfers matched per second in batch requests; failed requests and the moment
the new version answers while a model is swapped under steady load, both through a config
update (in place) and through `serve.run` (replicas replaced); memory of every Ray process.
Where the CPU goes: for each single-match row, the CPU milliseconds per answered request of the
client, Serve's proxy, the replicas, the uvicorn server and the rest of Ray (from /proc), and
how busy the two cores were; and (d) once more with the floor's p50 of idle before each request,
which is what a replica's model sees at concurrency 1 (the cores were busy elsewhere meanwhile).

The load generator is Python (httpx, asyncio) on the same 2 cores as the servers, so absolute
numbers understate what a separate client would see; the comparison between paths holds.
Every loop is bounded by a deadline and a count; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import hashlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from cashmatch.domain.match_api import MatchRequest, json_records
from cashmatch.domain.model_records import ModelRecord
from cashmatch.service_layer.registry import ModelRegistry

LOOPBACK = "127.0.0.1"
JSON = {"content-type": "application/json"}


# data and model ----------------------------------------------------------------------


def train_and_register(registry: ModelRegistry) -> tuple[float, Any]:
    """Train the default matcher on 4 small months; register it as v1 and v2."""
    from cashmatch.domain.matching import month_batches, train_matcher
    from cashmatch.synth import SynthConfig, generate

    data = generate(SynthConfig(months=4, scale=0.2, seed=5))
    batches = month_batches(data.invoices, data.transfers, data.matches)
    started = time.perf_counter()
    model = train_matcher(batches)
    seconds = time.perf_counter() - started
    artifact = model.to_bytes()
    for version in ("v1", "v2"):
        key = f"models/{version}/model.skops.zip"
        registry.blobs.put(key, artifact)
        registry.register(
            ModelRecord(
                version=version,
                model_uri=registry.blobs.uri(key),
                artifact_digest=hashlib.sha256(artifact).hexdigest(),
                dataset_uri="file:///bench",
                dataset_version="bench",
                training_months=sorted({b.month for b in batches}),
                training_metrics=model.training_metrics,
                created_at=dt.datetime.now(dt.UTC),
                caused_by="benchmark",
            )
        )
    return seconds, batches[-1]


def single_bodies(month, count: int = 40, n_invoices: int = 50) -> list[bytes]:
    """Single requests: a transfer, its labelled invoices and the nearest others by amount."""
    transfers = json_records(month.transfers)
    invoices = month.invoices.reset_index(drop=True)
    inv_records = json_records(invoices)
    paid = month.matches.groupby("transfer_id")["invoice_id"].agg(list).to_dict()
    bodies = []
    for transfer in transfers[:count]:
        own = set(paid.get(transfer["transfer_id"], []))
        distance = (invoices["open_amount"] - transfer["amount"]).abs()
        order = [i for i in distance.sort_values().index if invoices.at[i, "invoice_id"] not in own]
        chosen = [i for i in invoices.index if invoices.at[i, "invoice_id"] in own]
        chosen += order[: n_invoices - len(chosen)]
        body = {"transfer": transfer, "open_invoices": [inv_records[i] for i in chosen]}
        bodies.append(json.dumps(body).encode())
    return bodies


def batch_body(n_transfers: int, scale: float) -> tuple[bytes, int]:
    """A batch request from a bigger synthetic company: n transfers vs a month's open invoices."""
    from cashmatch.domain.matching import month_batches
    from cashmatch.synth import SynthConfig, generate

    data = generate(SynthConfig(months=4, scale=scale, seed=9))
    month = month_batches(data.invoices, data.transfers, data.matches)[-1]
    body = {
        "transfers": json_records(month.transfers.iloc[:n_transfers]),
        "open_invoices": json_records(month.invoices),
    }
    return json.dumps(body).encode(), len(month.invoices)


# load generation ---------------------------------------------------------------------
@dataclass
class Run:
    """What one load level measured."""

    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    seconds: float = 0.0
    versions: list[tuple[float, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def p50(self) -> float | None:
        """Median latency in seconds; None when nothing succeeded."""
        return statistics.median(self.latencies) if self.latencies else None

    def row(self) -> list[str]:
        """requests/s, p50 ms, p99 ms, failures."""
        if not self.latencies:
            return ["–", "–", "–", str(self.failures)]
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        return [
            f"{len(ordered) / self.seconds:,.1f}",
            f"{statistics.median(ordered) * 1000:,.1f}",
            f"{p99 * 1000:,.1f}",
            str(self.failures),
        ]


async def _load(
    url: str,
    bodies: list[bytes],
    concurrency: int,
    seconds: float,
    max_requests: int = 100_000,
    track_versions: bool = False,
) -> Run:
    run = Run()
    deadline = time.monotonic() + seconds
    counter = iter(range(max_requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def worker(k: int) -> None:
            for n in counter:
                if time.monotonic() > deadline:
                    return
                body = bodies[(k + n) % len(bodies)]
                started = time.perf_counter()
                try:
                    answer = await client.post(url, content=body, headers=JSON)
                except httpx.HTTPError as exc:
                    run.failures += 1
                    run.errors.append(repr(exc)[:200])
                    continue
                if answer.status_code != 200:
                    run.failures += 1
                    run.errors.append(f"{answer.status_code} {answer.text[:200]}")
                    continue
                run.latencies.append(time.perf_counter() - started)
                if track_versions:
                    run.versions.append((time.monotonic(), answer.json()["model_version"]))

        began = time.monotonic()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        run.seconds = time.monotonic() - began
    return run


def _ratio(value: float | None, floor: float | None) -> str:
    return "–" if value is None or not floor else f"{value / floor:.2f}"


def load(url: str, bodies: list[bytes], concurrency: int, seconds: float, **kw: Any) -> Run:
    """Closed-loop load: `concurrency` clients posting bodies until the deadline."""
    return asyncio.run(_load(url, bodies, concurrency, seconds, **kw))


def _match_json(service, body: bytes) -> None:
    """What an HTTP path does besides HTTP: validate the body, match, serialize the answer."""
    service.match(MatchRequest.model_validate_json(body)).model_dump_json()


def in_process(service, bodies: list[bytes], concurrency: int, seconds: float) -> Run:
    """The same work without HTTP: validate the JSON body, match, serialize the answer."""
    run = Run()
    deadline = time.monotonic() + seconds
    lock = threading.Lock()

    def worker(k: int) -> None:
        for n in range(100_000):
            if time.monotonic() > deadline:
                return
            started = time.perf_counter()
            _match_json(service, bodies[(k + n) % len(bodies)])
            with lock:
                run.latencies.append(time.perf_counter() - started)

    began = time.monotonic()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.seconds = time.monotonic() - began
    return run


def batch_rate(post: Callable[[], object], n_transfers: int, repeats: int) -> str:
    """Transfers matched per second over `repeats` batch requests (best of)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        post()
        best = min(best, time.perf_counter() - started)
    return f"{n_transfers / best:,.0f}/s ({best:.2f}s per request)"


def _post_ok(client: httpx.Client, url: str, body: bytes) -> Callable[[], None]:
    """POST `body` on a kept connection, as a client sending batch after batch would.

    `httpx.post` alone builds a new client (and SSL context) for every call: ~20 ms of the
    client's own, measured, which made a 100-transfer batch look 0.3x slower than it is.
    """

    def post() -> None:
        answer = client.post(url, content=body, headers=JSON)
        answer.raise_for_status()

    return post


# servers -----------------------------------------------------------------------------
def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def plain_server(port: int, blob_root: str, version: str) -> None:
    """(c): the matcher's FastAPI app under uvicorn, no Ray (run in a child process)."""
    import uvicorn

    from cashmatch.adapters.local.blobstore import DirectoryBlobStore
    from cashmatch.entrypoints.matcher.api import Limits, create_api
    from cashmatch.service_layer.matcher import MatcherService, ServingConfig

    service = MatcherService(ModelRegistry(DirectoryBlobStore(Path(blob_root))))
    service.apply(ServingConfig(model_version=version))

    class Plain:
        async def match_one(self, request):
            return await asyncio.to_thread(service.match, request)

        async def match_batch(self, request):
            return await asyncio.to_thread(service.match_batch, request)

        def health(self):
            return service.health()

        def model_info(self):
            return service.model_info()

    uvicorn.run(create_api(Plain(), Limits()), host=LOOPBACK, port=port, log_level="warning")


def wait_http(url: str, seconds: float = 120) -> None:
    """Until `url` answers 200."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=5).status_code == 200:
                return
        time.sleep(0.3)
    raise TimeoutError(url)


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


def memory_of(pids: list[int]) -> tuple[float, float]:
    """(RSS, PSS) in MiB summed over processes; PSS shares pages fairly between them."""
    rss = pss = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
    return rss / 1024, pss / 1024


# where the CPU goes --------------------------------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process so far; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def _machine_busy_seconds() -> float:
    """CPU seconds all cores spent on anything but idle and I/O wait."""
    counts = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(counts) - counts[3] - counts[4]) / _TICK


def process_role(pid: int) -> str:
    """What a process is, from the title Ray gives its workers."""
    if pid == os.getpid():
        return "client"
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return "gone"
    if "ProxyActor" in title:
        return "proxy"
    if "ServeReplica:" in title:
        return "replica"
    return "rest of Ray"


ROLES = ("client", "proxy", "replica", "server", "rest of Ray")


@dataclass
class CpuShares:
    """CPU milliseconds per answered request, by role, and how busy the machine was."""

    per_request_ms: dict[str, float]
    busy_percent: float

    def row(self) -> list[str]:
        """Machine busy %, total and each role's ms of CPU per request."""
        total = sum(self.per_request_ms.values())
        roles = [self.per_request_ms.get(r, 0.0) for r in ROLES]
        return [f"{self.busy_percent:.0f}%", f"{total:.2f}", *(f"{v:.2f}" for v in roles)]


def measure_cpu(
    pids: Callable[[], dict[int, str]], work: Callable[[], Run]
) -> tuple[Run, CpuShares]:
    """Run `work` and charge the CPU each process used meanwhile to its role.

    Processes started during the run (a replica the autoscaler adds) are not counted: most
    of what they use then is loading the model, not answering.
    """
    before = {pid: (role, _cpu_seconds(pid)) for pid, role in pids().items()}
    busy_before, started = _machine_busy_seconds(), time.monotonic()
    run = work()
    busy = _machine_busy_seconds() - busy_before
    wall = time.monotonic() - started
    used: dict[str, float] = {}
    for pid, (role, was) in before.items():
        now = _cpu_seconds(pid)
        if was is not None and now is not None:
            used[role] = used.get(role, 0.0) + now - was
    answered = max(1, len(run.latencies))
    shares = CpuShares({r: v / answered * 1000 for r, v in used.items()}, busy / wall * 100)
    return run, shares


def in_process_paced(service, bodies: list[bytes], gap_s: float, seconds: float) -> Run:
    """(d) one request at a time with `gap_s` of idle between them, as a replica sees c=1."""
    run = Run()
    deadline = time.monotonic() + seconds
    began = time.monotonic()
    for n in range(100_000):
        if time.monotonic() > deadline:
            break
        time.sleep(gap_s)
        started = time.perf_counter()
        _match_json(service, bodies[n % len(bodies)])
        run.latencies.append(time.perf_counter() - started)
    run.seconds = time.monotonic() - began
    return run


# the swap ----------------------------------------------------------------------------
def swap_under_load(
    url: str, bodies: list[bytes], swap: Callable[[], object], seconds: float
) -> dict[str, str]:
    """Steady load of 16 clients; `swap` runs after 2 s; when did v2 answer, what failed."""
    result: dict[str, Any] = {}

    def do_swap() -> None:
        time.sleep(2.0)
        result["start"] = time.monotonic()
        swap()
        result["done"] = time.monotonic()

    swapper = threading.Thread(target=do_swap)
    swapper.start()
    run = load(url, bodies, 16, seconds, track_versions=True)
    swapper.join()
    first_new = min((at for at, v in run.versions if v == "v2"), default=None)
    old_after = [at for at, v in run.versions if v == "v1" and at > result["done"]]
    return {
        "requests": str(len(run.latencies) + run.failures),
        "failed": str(run.failures) + (f" ({run.errors[0][:60]})" if run.errors else ""),
        "v2 first answers after": "never"
        if first_new is None
        else f"{first_new - result['start']:.2f}s",
        "swap call returned after": f"{result['done'] - result['start']:.2f}s",
        "v1 answers after return": str(len(old_after)),
        "p99 during swap": run.row()[2] + " ms",
    }


# report ------------------------------------------------------------------------------
def table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A plain-text table on stdout."""
    widths = [max(len(str(c)), *(len(str(r[k])) for r in rows)) for k, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(str(c).ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))


def main() -> None:
    """Run everything once and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, small batch only")
    parser.add_argument("--seconds", type=float, default=6.0, help="per load level")
    parser.add_argument("--plain-server", nargs=3, metavar=("PORT", "BLOB_ROOT", "VERSION"))
    options = parser.parse_args()
    if options.plain_server:
        port, blob_root, version = options.plain_server
        plain_server(int(port), blob_root, version)
        return
    seconds = 2.0 if options.quick else options.seconds
    levels = [1, 16] if options.quick else [1, 16, 64]

    from cashmatch.adapters.local.blobstore import DirectoryBlobStore
    from cashmatch.adapters.local.ray_head import (
        head_processes,
        read_head,
        serve_environment,
        stop_local_serving,
    )
    from cashmatch.adapters.local.ray_serving import LocalRayServing
    from cashmatch.service_layer.matcher import MatcherService, ServingConfig
    from cashmatch.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="cashmatch-bench-"))
    workspace = workdir / "ws"
    registry = ModelRegistry(DirectoryBlobStore(workspace / "blobs"))
    train_s, month = train_and_register(registry)
    bodies = single_bodies(month)
    batches = [(100, 0.2)] if options.quick else [(100, 0.2), (1000, 2.8)]
    batch_bodies = [(n, *batch_body(n, scale)) for n, scale in batches]
    settings = Settings(workspace=workspace, serve_port=free_port())
    serving = LocalRayServing(settings, timeout_s=300)
    plain_port = free_port()
    plain = None
    try:
        started = time.perf_counter()
        serving.roll_out(registry.get("v1"))
        first_rollout = time.perf_counter() - started
        deploy_noop()
        deploy_validating_noop()
        deploy_imperative(workspace / "blobs", "v1")
        plain = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--plain-server",
                str(plain_port),
                str(workspace / "blobs"),
                "v1",
            ],
        )
        ray_url, plain_url = serving.endpoint, f"http://{LOOPBACK}:{plain_port}"
        wait_http(f"{plain_url}/v1/health")
        wait_app("noop")
        wait_app("noop-validated")
        wait_app("matcher-run")
        local = MatcherService(registry)
        local.apply(ServingConfig(model_version="v1"))
        validated = f"{ray_url}/noop-validated/v1/match"
        for url in (f"{ray_url}/v1/match", f"{plain_url}/v1/match", f"{ray_url}/noop", validated):
            load(url, bodies, 4, 1.0)  # warm-up: connections, first-call caches
        # What this process built (data, bodies, the model) is kept out of the garbage
        # collector's passes, so (d) in-process is not slowed by the benchmark's own objects.
        gc.collect()
        gc.freeze()

        head = read_head(workspace)
        assert head is not None

        def roles() -> dict[int, str]:
            found = {pid: process_role(pid) for pid in head_processes(head)}
            return {**found, plain.pid: "server", os.getpid(): "client"}

        rows, cpu_rows = [], []
        for c in levels:
            http = partial(load, bodies=bodies, concurrency=c, seconds=seconds)
            local_run = partial(in_process, local, bodies, min(c, 16), seconds)
            paths = [
                ("(a) no-op Ray Serve", partial(http, f"{ray_url}/noop")),
                ("(a2) matcher's ingress, no model", partial(http, validated)),
                ("(b) matcher, Ray Serve", partial(http, f"{ray_url}/v1/match")),
                ("(c) matcher, uvicorn", partial(http, f"{plain_url}/v1/match")),
                ("(d) matcher, in-process", local_run),
            ]
            runs = [(name, *measure_cpu(roles, work)) for name, work in paths]
            floor = runs[0][1].p50()
            if c == 1 and floor:
                # The model runs after the client and the proxy have had the cores for about
                # the floor's latency: the same work with that much idle before each request.
                paced = partial(in_process_paced, local, bodies, floor, seconds)
                name = "(d) in-process, idle a floor's p50 between"
                runs.append((name, *measure_cpu(roles, paced)))
            for name, run, shares in runs:
                rows.append([name, str(c), *run.row(), _ratio(run.p50(), floor)])
                cpu_rows.append([name, str(c), *shares.row()])
        table(
            "single matches (1 transfer, 50 open invoices); in-process caps at 16 threads",
            ["path", "concurrency", "requests/s", "p50 ms", "p99 ms", "failed", "p50 / (a)"],
            rows,
        )
        table(
            "CPU ms per answered request, by process (2 cores; in-process work is the client's)",
            ["path", "concurrency", "machine busy", "total", *ROLES],
            cpu_rows,
        )
        matcher_replicas = len(serving.replica_ids())
        # The load above may have started a replica; batches measured while it loads its model
        # would share the 2 cores with it.
        wait_replicas_settled("matcher")

        from cashmatch.domain.match_api import BatchMatchRequest

        rows = []
        with httpx.Client(timeout=600) as client:
            for n, body, n_invoices in batch_bodies:
                repeats = 2 if n >= 1000 else 3
                request = BatchMatchRequest.model_validate_json(body)
                # Warm-up: each process normalises names and numbers once and keeps them (bounded
                # caches); with two replicas a request may land on either, so post a few times.
                for url in (f"{ray_url}/v1/match/batch", f"{plain_url}/v1/match/batch"):
                    for _ in range(3):
                        _post_ok(client, url, body)()
                local.match_batch(request)

                def json_in_json_out(body: bytes = body) -> None:
                    """What the HTTP paths do besides HTTP: validate the body, match, serialize."""
                    local.match_batch(BatchMatchRequest.model_validate_json(body)).model_dump_json()

                rows += [
                    [f"{n} x {n_invoices}", "(b) Ray Serve",
                     batch_rate(_post_ok(client, f"{ray_url}/v1/match/batch", body), n, repeats)],
                    [f"{n} x {n_invoices}", "(c) uvicorn",
                     batch_rate(_post_ok(client, f"{plain_url}/v1/match/batch", body), n, repeats)],
                    [f"{n} x {n_invoices}", "(d) in-process, JSON in and out",
                     batch_rate(json_in_json_out, n, repeats)],
                    [f"{n} x {n_invoices}", "(d) in-process, model only",
                     batch_rate(partial(local.match_batch, request), n, repeats)],
                ]  # fmt: skip
        table("batch requests: transfers matched per second", ["batch", "path", "rate"], rows)

        before = replica_ids("matcher")
        in_place = swap_under_load(
            f"{ray_url}/v1/match", bodies, lambda: serving.roll_out(registry.get("v2")), 8.0
        )
        in_place["replicas kept"] = str(replica_ids("matcher") == before)
        before = replica_ids("matcher-run")
        rerun = swap_under_load(
            f"{ray_url}/run/v1/match",
            bodies,
            partial(redeploy_imperative, workspace / "blobs", "v2"),
            20.0,
        )
        rerun["replicas kept"] = str(replica_ids("matcher-run") == before)
        table(
            "model swap v1 -> v2 under 16 concurrent clients",
            ["", "config update (LocalRayServing)", "serve.run again"],
            [[k, in_place[k], rerun.get(k, "")] for k in in_place],
        )

        pids = head_processes(head)
        rss, pss = memory_of(pids)
        plain_rss, plain_pss = memory_of([plain.pid])
        table(
            "memory and start-up",
            ["what", "value"],
            [
                ["training the model (default MatcherConfig)", f"{train_s:.1f}s"],
                ["first roll-out (start Ray head, Serve, replica)", f"{first_rollout:.1f}s"],
                ["matcher replicas after the load (autoscaling 1..2)", str(matcher_replicas)],
                [f"all Ray processes ({len(pids)}), RSS / PSS",
                 f"{rss:,.0f} / {pss:,.0f} MiB"],
                ["plain uvicorn process, RSS / PSS", f"{plain_rss:,.0f} / {plain_pss:,.0f} MiB"],
            ],
        )  # fmt: skip
        print(
            "\nNarrowing the proxy hop (see services/matcher/README.md): keep client connections"
            " alive; proxy_location HeadOnly; dynamic batching (max_batch_size 16,"
            " batch_wait_timeout_s 0: no waiting, batches form under load); max_ongoing_requests"
            " high enough that the proxy never queues; RAY_SERVE_PROXY_USE_GRPC=1 (proxy to"
            " replica over gRPC; on by default, RAY_SERVE_PROXY_USE_GRPC=0 measures without);"
            f" now {serve_environment()['RAY_SERVE_PROXY_USE_GRPC']};"
            " RAY_SERVE_THROUGHPUT_OPTIMIZED=1 (also turns on direct ingress);"
            " RAY_SERVE_ENABLE_HA_PROXY=1 or RAY_SERVE_ENABLE_DIRECT_INGRESS=1 (experimental)."
        )
    finally:
        if plain is not None:
            plain.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                plain.wait(timeout=20)
            if plain.poll() is None:
                os.kill(plain.pid, signal.SIGKILL)
        print(f"\n{stop_local_serving(workspace)}")
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
