"""One run of the serving benchmark: start every path, measure them, print the tables.

The paths share one Ray head and one model: (a) a no-op Serve deployment, (a2) the matcher's
ingress without a model, (b) the matcher on Ray Serve (LocalRayServing), (c) the same app under
plain uvicorn in a child process, (d) the matcher in this process. Tables, in this order:
single matches at each concurrency, CPU per request by process, batch throughput, a model swap
under load (config update and `serve.run` again), memory and start-up.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from benchmarks.serving.deployments import (
    deploy_imperative,
    deploy_noop,
    deploy_validating_noop,
    redeploy_imperative,
    replica_ids,
    wait_app,
    wait_replicas_settled,
)
from benchmarks.serving.load import (
    Run,
    batch_rate,
    in_process,
    in_process_paced,
    load,
    post_ok,
)
from benchmarks.serving.report import ratio, table
from benchmarks.serving.resources import ROLES, measure_cpu, memory_of, process_role
from benchmarks.serving.servers import LOOPBACK, free_port, plain_server_process, wait_http
from benchmarks.serving.swap import swap_under_load
from benchmarks.serving.workload import batch_body, single_bodies, train_and_register
from cashmatch.service_layer.registry import ModelRegistry

if TYPE_CHECKING:
    from cashmatch.adapters.local.ray_head import HeadState
    from cashmatch.adapters.local.ray_serving import LocalRayServing
    from cashmatch.service_layer.matcher import MatcherService

VALIDATED_MATCH = "/noop-validated/v1/match"  # (a2)'s single matches, under Serve's endpoint


def _override(threshold: float | None):
    """The guardrail's override of v1 at `threshold` (None: none)."""
    if threshold is None:
        return None
    import datetime as dt

    from cashmatch.domain.model_records import ThresholdOverride

    return ThresholdOverride(
        threshold=threshold,
        version="v1",
        month="bench",
        set_at=dt.datetime.now(dt.UTC),
        by="bench",
        reason="benchmark",
    )


@dataclass
class Paths:
    """The running paths, once each answers, and what measuring them needs."""

    serving: LocalRayServing
    registry: ModelRegistry
    blob_root: Path
    local: MatcherService  # (d): the matcher in this process
    head: HeadState
    plain_pid: int
    ray_url: str
    plain_url: str
    bodies: list[bytes]

    @property
    def validated(self) -> str:
        """(a2)'s single-match URL."""
        return f"{self.ray_url}{VALIDATED_MATCH}"

    def roles(self) -> dict[int, str]:
        """Every process the paths run in, by role (client, proxy, replica, server, rest)."""
        from cashmatch.adapters.local.ray_head import head_processes

        found = {pid: process_role(pid) for pid in head_processes(self.head)}
        return {**found, self.plain_pid: "server", os.getpid(): "client"}


def run_all(quick: bool, seconds_per_level: float, override: float | None = None) -> None:
    """Run everything once and print the tables; `override`: (b) and (d) serve v1 at that
    guardrail threshold, as a breach would leave them."""
    seconds = 2.0 if quick else seconds_per_level
    if override is not None:
        print(f"(b) and (d) serve v1 at the guardrail threshold {override} (c: its own)")
    levels = [1, 16] if quick else [1, 16, 64]

    from cashmatch.adapters.local.blobstore import DirectoryBlobStore
    from cashmatch.adapters.local.ray_head import stop_local_serving
    from cashmatch.adapters.local.ray_serving import LocalRayServing
    from cashmatch.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="cashmatch-bench-"))
    workspace = workdir / "ws"
    blob_root = workspace / "blobs"
    registry = ModelRegistry(DirectoryBlobStore(blob_root))
    train_s, month = train_and_register(registry)
    bodies = single_bodies(month)
    batches = [(100, 0.2)] if quick else [(100, 0.2), (1000, 2.8)]
    batch_bodies = [(n, *batch_body(n, scale)) for n, scale in batches]
    settings = Settings(workspace=workspace, serve_port=free_port())
    serving = LocalRayServing(settings, timeout_s=300)
    plain_port = free_port()
    try:
        started = time.perf_counter()
        serving.roll_out(registry.get("v1"), _override(override))
        first_rollout = time.perf_counter() - started
        deploy_noop()
        deploy_validating_noop()
        deploy_imperative(blob_root, "v1")
        with plain_server_process(plain_port, blob_root, "v1") as plain:
            url = f"http://{LOOPBACK}:{plain_port}"
            paths = ready_paths(
                serving, registry, workspace, blob_root, plain.pid, url, bodies, override
            )
            single_match_tables(paths, levels, seconds)
            matcher_replicas = len(serving.replica_ids())
            # The load above may have started a replica; batches measured while it loads its
            # model would share the 2 cores with it.
            wait_replicas_settled("matcher")
            batch_table(paths, batch_bodies)
            swap_table(paths)
            memory_table(paths, train_s, first_rollout, matcher_replicas)
            print_proxy_note()
    finally:
        print(f"\n{stop_local_serving(workspace)}")
        shutil.rmtree(workdir, ignore_errors=True)


def ready_paths(
    serving: LocalRayServing,
    registry: ModelRegistry,
    workspace: Path,
    blob_root: Path,
    plain_pid: int,
    plain_url: str,
    bodies: list[bytes],
    override: float | None = None,
) -> Paths:
    """Wait until every path answers, warm each up and keep this process's objects out of GC."""
    from cashmatch.adapters.local.ray_head import read_head
    from cashmatch.service_layer.matcher import MatcherService, ServingConfig

    ray_url = serving.endpoint
    wait_http(f"{plain_url}/v1/health")
    wait_app("noop")
    wait_app("noop-validated")
    wait_app("matcher-run")
    local = MatcherService(registry)
    local.apply(ServingConfig(model_version="v1", threshold=override))
    validated = f"{ray_url}{VALIDATED_MATCH}"
    for url in (f"{ray_url}/v1/match", f"{plain_url}/v1/match", f"{ray_url}/noop", validated):
        load(url, bodies, 4, 1.0)  # warm-up: connections, first-call caches
    # What this process built (data, bodies, the model) is kept out of the garbage
    # collector's passes, so (d) in-process is not slowed by the benchmark's own objects.
    gc.collect()
    gc.freeze()

    head = read_head(workspace)
    assert head is not None
    return Paths(
        serving=serving,
        registry=registry,
        blob_root=blob_root,
        local=local,
        head=head,
        plain_pid=plain_pid,
        ray_url=ray_url,
        plain_url=plain_url,
        bodies=bodies,
    )


def _single_match_paths(
    paths: Paths, concurrency: int, seconds: float
) -> list[tuple[str, Callable[[], Run]]]:
    """Each path's load at one concurrency, by its row name."""
    http = partial(load, bodies=paths.bodies, concurrency=concurrency, seconds=seconds)
    local_run = partial(in_process, paths.local, paths.bodies, min(concurrency, 16), seconds)
    return [
        ("(a) no-op Ray Serve", partial(http, f"{paths.ray_url}/noop")),
        ("(a2) matcher's ingress, no model", partial(http, paths.validated)),
        ("(b) matcher, Ray Serve", partial(http, f"{paths.ray_url}/v1/match")),
        ("(c) matcher, uvicorn", partial(http, f"{paths.plain_url}/v1/match")),
        ("(d) matcher, in-process", local_run),
    ]


def single_match_tables(paths: Paths, levels: list[int], seconds: float) -> None:
    """Latency and CPU per request of single matches on every path at each concurrency."""
    rows, cpu_rows, overhead_rows = [], [], []
    for c in levels:
        runs = [
            (name, *measure_cpu(paths.roles, work))
            for name, work in _single_match_paths(paths, c, seconds)
        ]
        floor = runs[0][1].p50()
        if c == 1 and floor:
            # The model runs after the client and the proxy have had the cores for about
            # the floor's latency: the same work with that much idle before each request.
            paced = partial(in_process_paced, paths.local, paths.bodies, floor, seconds)
            runs.append((PACED, *measure_cpu(paths.roles, paced)))
        for name, run, shares in runs:
            rows.append([name, str(c), *run.row(), ratio(run.p50(), floor)])
            cpu_rows.append([name, str(c), *shares.row()])
        overhead_rows.append(_overhead_row(c, {name: run for name, run, _ in runs}))
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
    table(
        "serving overhead: ((b) p50 - in-process p50) / (a) p50; goal <= 1.2 at 1 and 16",
        ["concurrency", "(b) p50 ms", "in-process p50 ms", "(a) p50 ms", "overhead", "in-process"],
        overhead_rows,
    )


PACED = "(d) in-process, idle a floor's p50 between"


def _overhead_row(concurrency: int, runs: dict[str, Run]) -> list[str]:
    """What serving adds to the model's own time, in units of Serve's bare hop.

    At concurrency 1 the in-process reference is the paced row (the model with as much idle
    before each request as the HTTP client leaves it); above, the in-process run at the same
    concurrency (capped at 16 threads), whose p50 carries the same queueing for the cores.
    """
    served = runs["(b) matcher, Ray Serve"].p50()
    floor = runs["(a) no-op Ray Serve"].p50()
    reference_name = PACED if PACED in runs else "(d) matcher, in-process"
    reference = runs[reference_name].p50()
    if served is None or floor is None or reference is None or not floor:
        overhead = "–"
    else:
        overhead = f"{(served - reference) / floor:.2f}"

    def ms(value: float | None) -> str:
        return "–" if value is None else f"{value * 1000:.1f}"

    return [
        str(concurrency),
        ms(served),
        ms(reference),
        ms(floor),
        overhead,
        "paced" if reference_name == PACED else f"{min(concurrency, 16)} threads",
    ]


def _batch_rows(
    paths: Paths, client: httpx.Client, n: int, body: bytes, n_invoices: int
) -> list[list[str]]:
    """One batch's rate on (b), (c) and (d), after a warm-up of each."""
    from cashmatch.domain.match_api import BatchMatchRequest

    ray_url, plain_url, local = paths.ray_url, paths.plain_url, paths.local
    repeats = 2 if n >= 1000 else 3
    request = BatchMatchRequest.model_validate_json(body)
    # Warm-up: each process normalises names and numbers once and keeps them (bounded
    # caches); with two replicas a request may land on either, so post a few times.
    for url in (f"{ray_url}/v1/match/batch", f"{plain_url}/v1/match/batch"):
        for _ in range(3):
            post_ok(client, url, body)()
    local.match_batch(request)

    def json_in_json_out() -> None:
        """What the HTTP paths do besides HTTP: validate the body, match, serialize."""
        local.match_batch(BatchMatchRequest.model_validate_json(body)).model_dump_json()

    return [
        [f"{n} x {n_invoices}", "(b) Ray Serve",
         batch_rate(post_ok(client, f"{ray_url}/v1/match/batch", body), n, repeats)],
        [f"{n} x {n_invoices}", "(c) uvicorn",
         batch_rate(post_ok(client, f"{plain_url}/v1/match/batch", body), n, repeats)],
        [f"{n} x {n_invoices}", "(d) in-process, JSON in and out",
         batch_rate(json_in_json_out, n, repeats)],
        [f"{n} x {n_invoices}", "(d) in-process, model only",
         batch_rate(partial(local.match_batch, request), n, repeats)],
    ]  # fmt: skip


def batch_table(paths: Paths, batch_bodies: list[tuple[int, bytes, int]]) -> None:
    """Transfers matched per second in batch requests, on one kept connection."""
    rows = []
    with httpx.Client(timeout=600) as client:
        for n, body, n_invoices in batch_bodies:
            rows += _batch_rows(paths, client, n, body, n_invoices)
    table("batch requests: transfers matched per second", ["batch", "path", "rate"], rows)


def swap_table(paths: Paths) -> None:
    """v1 -> v2 under load, by a config update in place and by `serve.run` again."""
    before = replica_ids("matcher")
    in_place = swap_under_load(
        f"{paths.ray_url}/v1/match",
        paths.bodies,
        lambda: paths.serving.roll_out(paths.registry.get("v2")),
        8.0,
    )
    in_place["replicas kept"] = str(replica_ids("matcher") == before)
    before = replica_ids("matcher-run")
    rerun = swap_under_load(
        f"{paths.ray_url}/run/v1/match",
        paths.bodies,
        partial(redeploy_imperative, paths.blob_root, "v2"),
        20.0,
    )
    rerun["replicas kept"] = str(replica_ids("matcher-run") == before)
    table(
        "model swap v1 -> v2 under 16 concurrent clients",
        ["", "config update (LocalRayServing)", "serve.run again"],
        [[k, in_place[k], rerun.get(k, "")] for k in in_place],
    )


def memory_table(paths: Paths, train_s: float, first_rollout: float, matcher_replicas: int) -> None:
    """Memory of every Ray process and of the plain server; training and first roll-out time."""
    from cashmatch.adapters.local.ray_head import head_processes

    pids = head_processes(paths.head)
    rss, pss = memory_of(pids)
    plain_rss, plain_pss = memory_of([paths.plain_pid])
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


def print_proxy_note() -> None:
    """What narrows the proxy hop, and which transport this run's proxy used."""
    from cashmatch.adapters.local.ray_head import serve_environment

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
