"""The matcher on local Ray Serve under steady load while things go wrong: what fails, and for
how long.

    .venv/bin/python -m benchmarks.faults [--seconds 20] [--clients 8]   (or: make bench-faults)

Scenarios, each under `--clients` closed-loop clients posting single matches over real HTTP:
  1. one of two replicas killed (SIGKILL of its worker process);
  2. the only replica killed;
  3. a model roll-out (user_config applied in place).
For each: requests sent and failed, when the last failure happened after the fault, and how
long until Serve reported the full replica count RUNNING again. The e2e test
tests/e2e/test_serving_faults.py asserts the same behaviour on a smaller scale.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

JSON = {"content-type": "application/json"}


@dataclass
class Timeline:
    """Every request's end time and outcome, relative to the load's start."""

    started: float = 0.0
    outcomes: list[tuple[float, bool, str]] = field(default_factory=list)

    @property
    def failures(self) -> list[tuple[float, bool, str]]:
        """The failed requests."""
        return [o for o in self.outcomes if not o[1]]

    def last_failure_after(self, moment: float) -> float | None:
        """Seconds from `moment` to the last failure after it, or None if nothing failed."""
        late = [at for at, ok, _ in self.outcomes if not ok and at >= moment]
        return max(late) - moment if late else None

    def successes_after(self, moment: float) -> int:
        """Requests answered 200 after `moment`."""
        return sum(1 for at, ok, _ in self.outcomes if ok and at >= moment)


async def _steady(
    url: str,
    bodies: list[bytes],
    clients: int,
    seconds: float,
    stop: threading.Event,
    timeline: Timeline,
) -> Timeline:
    deadline = timeline.started + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def worker(k: int) -> None:
            n = 0
            while time.monotonic() < deadline and not stop.is_set():
                body = bodies[(k + n) % len(bodies)]
                n += 1
                try:
                    answer = await client.post(url, content=body, headers=JSON)
                    ok, note = answer.status_code == 200, str(answer.status_code)
                except httpx.HTTPError as exc:
                    ok, note = False, type(exc).__name__
                timeline.outcomes.append((time.monotonic(), ok, note))
                if not ok:
                    await asyncio.sleep(0.05)  # a client backs off a little after an error

        await asyncio.gather(*(worker(k) for k in range(clients)))
    return timeline


def steady_load(
    url: str,
    bodies: list[bytes],
    clients: int,
    seconds: float,
    stop: threading.Event | None = None,
) -> tuple[threading.Thread, dict[str, Timeline]]:
    """Closed-loop load in a thread for `seconds` or until `stop` is set. `result["timeline"]`
    fills while it runs (a test can wait on it); join the thread before reading it whole."""
    stop = stop or threading.Event()
    result = {"timeline": Timeline(started=time.monotonic())}

    def run() -> None:
        asyncio.run(_steady(url, bodies, clients, seconds, stop, result["timeline"]))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def kill_replica(serving: Any) -> str:
    """SIGKILL the worker process of one running matcher replica; its replica id."""
    replica_id, pid = sorted(serving.replica_pids().items())[0]
    os.kill(pid, signal.SIGKILL)
    return replica_id


def wait_replicas(serving: Any, count: int, excluding: str | None, timeout_s: float) -> float:
    """Seconds until `count` replicas run (none of them `excluding`); raises on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        running = serving.replica_ids()
        if len(running) >= count and excluding not in running:
            return time.monotonic() - started
        time.sleep(0.1)
    raise TimeoutError(f"{count} replicas were not running again after {timeout_s:.0f}s")


def under_fault(
    serving: Any,
    bodies: list[bytes],
    fault: Callable[[], object],
    *,
    replicas: int,
    clients: int,
    seconds: float,
    killed: bool,
) -> dict[str, str]:
    """Steady load; `fault` after 2 s; what failed and when things were whole again."""
    thread, result = steady_load(f"{serving.endpoint}/v1/match", bodies, clients, seconds)
    time.sleep(2.0)
    at = time.monotonic()
    outcome = fault()
    back = (
        wait_replicas(serving, replicas, str(outcome) if killed else None, timeout_s=120)
        if killed
        else time.monotonic() - at
    )
    thread.join()
    timeline = result["timeline"]
    last = timeline.last_failure_after(at)
    kinds = sorted({note for _, _, note in timeline.failures})
    return {
        "requests": str(len(timeline.outcomes)),
        "failed": str(len(timeline.failures)) + (f" ({', '.join(kinds)})" if kinds else ""),
        "last failure after the fault": "–" if last is None else f"{last:.1f}s",
        "replicas whole again / roll-out done after": f"{back:.1f}s",
        "answered after the fault": str(timeline.successes_after(at)),
    }


def main() -> None:
    """Run the three scenarios and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="load per scenario")
    parser.add_argument("--clients", type=int, default=8)
    options = parser.parse_args()

    from benchmarks.serving.report import table
    from benchmarks.serving.servers import free_port
    from benchmarks.serving.workload import single_bodies, train_and_register
    from cashmatch.adapters.local.blobstore import DirectoryBlobStore
    from cashmatch.adapters.local.ray_head import stop_local_serving
    from cashmatch.adapters.local.ray_serving import LocalRayServing
    from cashmatch.service_layer.registry import ModelRegistry
    from cashmatch.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="cashmatch-faults-"))
    workspace = workdir / "ws"
    registry = ModelRegistry(DirectoryBlobStore(workspace / "blobs"))
    _, month = train_and_register(registry)
    bodies = single_bodies(month)
    settings = Settings(workspace=workspace, serve_port=free_port())
    columns: dict[str, dict[str, str]] = {}
    try:
        for replicas in (2, 1):
            fixed = {"min_replicas": replicas, "max_replicas": replicas}
            serving = LocalRayServing(settings, timeout_s=300, app_overrides={"autoscaling": fixed})
            serving.roll_out(registry.get("v1"))
            wait_replicas(serving, replicas, None, timeout_s=120)
            name = "kill 1 of 2 replicas" if replicas == 2 else "kill the only replica"
            columns[name] = under_fault(
                serving,
                bodies,
                lambda: kill_replica(serving),  # noqa: B023 (called at once, in this loop)
                replicas=replicas,
                clients=options.clients,
                seconds=options.seconds,
                killed=True,
            )
        columns["roll-out v1 -> v2 (1 replica)"] = under_fault(
            serving,
            bodies,
            lambda: serving.roll_out(registry.get("v2")),
            replicas=1,
            clients=options.clients,
            seconds=options.seconds,
            killed=False,
        )
    finally:
        print(stop_local_serving(workspace))
    keys = list(next(iter(columns.values())))
    table(
        f"faults under {options.clients} clients posting single matches ({options.seconds:.0f}s "
        "each, fault at 2 s)",
        ["", *columns],
        [[k, *(c[k] for c in columns.values())] for k in keys],
    )


if __name__ == "__main__":
    main()
