"""The matcher on local Ray Serve keeps answering while a replica's process is killed.

Real SIGKILL of a replica's worker under steady HTTP load on 127.0.0.1: only the requests in
flight on that replica fail (a match is a pure function of the request and the model, so a
client may retry them), Serve replaces the replica, and nothing fails afterwards.
`benchmarks/faults.py` measures the same with more load and reports the figures.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from benchmarks.faults import kill_replica, steady_load, wait_replicas
from cashmatch.service_layer.registry import ModelRegistry
from tests.fakes.models import register_artifact

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
]
CLIENTS = 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bodies(transfers: list[dict], invoices: list[dict]) -> list[bytes]:
    """Single requests: 20 transfers, each against the same 50 open invoices."""
    return [
        json.dumps({"transfer": t, "open_invoices": invoices[:50]}).encode() for t in transfers[:20]
    ]


def answered(result: dict, *, since: float, at_least: int, timeout_s: float = 120.0) -> None:
    """Wait until `at_least` requests sent by the load were answered after `since`."""
    deadline = time.monotonic() + timeout_s
    while sum(1 for at, _, _ in list(result["timeline"].outcomes) if at > since) < at_least:
        assert time.monotonic() < deadline, f"fewer than {at_least} answers in {timeout_s:.0f}s"
        time.sleep(0.05)


def test_killing_a_replica_under_load_fails_only_its_requests_in_flight(
    tmp_path: Path, small_model
):
    from cashmatch.adapters.local.blobstore import DirectoryBlobStore
    from cashmatch.adapters.local.ray_head import stop_local_serving
    from cashmatch.adapters.local.ray_serving import LocalRayServing
    from cashmatch.settings import Settings

    artifact, transfers, invoices = small_model
    bodies = _bodies(transfers, invoices)
    workspace = tmp_path / "ws"
    registry = ModelRegistry(DirectoryBlobStore(workspace / "blobs"))
    register_artifact(registry, "v1", artifact)
    settings = Settings(workspace=workspace, serve_port=_free_port(), serving="ray")
    serving = LocalRayServing(
        settings,
        timeout_s=240,
        app_overrides={"autoscaling": {"min_replicas": 2, "max_replicas": 2}},
    )
    try:
        serving.roll_out(registry.get("v1"))
        wait_replicas(serving, 2, None, timeout_s=180)
        before = set(serving.replica_ids())

        stop = threading.Event()
        thread, result = steady_load(
            f"{serving.endpoint}/v1/match", bodies, CLIENTS, 300.0, stop=stop
        )
        # Conditions, not clocks: the load is flowing before the kill, and answers keep
        # coming once the replica is replaced.
        answered(result, since=0.0, at_least=40)
        killed_at = time.monotonic()
        killed = kill_replica(serving)
        wait_replicas(serving, 2, killed, timeout_s=180)
        whole_at = time.monotonic()
        answered(result, since=whole_at, at_least=40)
        stop.set()
        thread.join(timeout=120)
        timeline = result["timeline"]
    finally:
        stop_local_serving(workspace)

    assert killed in before
    failures = timeline.failures
    before_kill = [o for o in timeline.outcomes if o[0] < killed_at]
    assert before_kill and all(ok for _, ok, _ in before_kill)
    # Each client has one request in flight: at most that many can have been on the replica.
    assert len(failures) <= CLIENTS, failures
    assert timeline.successes_after(killed_at) > 0
    answered_when_whole = [ok for at, ok, _ in timeline.outcomes if at > whole_at]
    assert answered_when_whole and all(answered_when_whole)
    print(
        f"replica kill: {len(timeline.outcomes)} requests, {len(failures)} failed, "
        f"replaced after {whole_at - killed_at:.1f}s"
    )
