"""The load: closed-loop clients posting bodies over HTTP, the same work in-process, batch rates.

Every client sends its next request when the previous one answered (closed loop), so a level is
its concurrency, and latency is what one client waits. The in-process runs do what an HTTP path
does besides HTTP (validate the JSON body, match, serialize the answer), so the difference is
the transport. The load generator is Python (httpx, asyncio) on the same cores as the servers:
absolute numbers understate what a separate client would see; the comparison between paths
holds. Every loop is bounded by a deadline and a count.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from cashmatch.domain.match_api import MatchRequest

JSON = {"content-type": "application/json"}


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


def batch_rate(post: Callable[[], object], n_transfers: int, repeats: int) -> str:
    """Transfers matched per second over `repeats` batch requests (best of)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        post()
        best = min(best, time.perf_counter() - started)
    return f"{n_transfers / best:,.0f}/s ({best:.2f}s per request)"


def post_ok(client: httpx.Client, url: str, body: bytes) -> Callable[[], None]:
    """POST `body` on a kept connection, as a client sending batch after batch would.

    `httpx.post` alone builds a new client (and SSL context) for every call: ~20 ms of the
    client's own, measured, which made a 100-transfer batch look 0.3x slower than it is.
    """

    def post() -> None:
        answer = client.post(url, content=body, headers=JSON)
        answer.raise_for_status()

    return post
