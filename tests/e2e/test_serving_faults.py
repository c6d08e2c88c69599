"""The matcher on local Ray Serve keeps answering while a replica's process is killed.

Real SIGKILL of a replica's worker under steady HTTP load on 127.0.0.1: only the requests in
flight on that replica fail (a match is a pure function of the request and the model, so a
client may retry them), Serve replaces the replica, and nothing fails afterwards.
`benchmarks/faults.py` measures the same with more load and reports the figures.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from benchmarks.faults import kill_replica, steady_load, wait_replicas
from services.matcher.schemas import json_records
from shared.registry import ModelRecord, ModelRegistry

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


def _bodies() -> tuple[bytes, list[bytes]]:
    from shared.matching import MatcherConfig, month_batches, train_matcher
    from shared.synth import SynthConfig, generate

    data = generate(SynthConfig(months=3, scale=0.1, seed=5))
    batches = month_batches(data.invoices, data.transfers, data.matches)
    config = MatcherConfig(pair_max_iter=30, set_max_iter=30, n_folds=2, calibration_months=1)
    model = train_matcher(batches, config)
    last = batches[-1]
    invoices = json_records(last.invoices)[:50]
    bodies = [
        json.dumps({"transfer": t, "open_invoices": invoices}).encode()
        for t in json_records(last.transfers)[:20]
    ]
    return model.to_bytes(), bodies


def test_killing_a_replica_under_load_fails_only_its_requests_in_flight(tmp_path: Path):
    from shared.adapters.local.blobstore import DirectoryBlobStore
    from shared.adapters.local.ray_serving import LocalRayServing, stop_local_serving
    from shared.settings import Settings

    artifact, bodies = _bodies()
    workspace = tmp_path / "ws"
    registry = ModelRegistry(DirectoryBlobStore(workspace / "blobs"))
    key = "models/v1/model.skops.zip"
    registry.blobs.put(key, artifact)
    registry.register(
        ModelRecord(
            version="v1",
            model_uri=registry.blobs.uri(key),
            artifact_digest=hashlib.sha256(artifact).hexdigest(),
            dataset_uri="file:///datasets/test",
            dataset_version="ds-test",
            training_months=["2025-01"],
            training_metrics={},
            created_at=dt.datetime.now(dt.UTC),
            caused_by="test",
        )
    )
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
        time.sleep(3.0)
        killed_at = time.monotonic()
        killed = kill_replica(serving)
        wait_replicas(serving, 2, killed, timeout_s=180)
        whole_at = time.monotonic()
        time.sleep(3.0)
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
    assert all(at - killed_at < 5.0 for at, _, _ in failures), failures
    assert timeline.successes_after(killed_at) > 0
    answered_when_whole = [ok for at, ok, _ in timeline.outcomes if at > whole_at]
    assert answered_when_whole and all(answered_when_whole)
    print(
        f"replica kill: {len(timeline.outcomes)} requests, {len(failures)} failed, "
        f"replaced after {whole_at - killed_at:.1f}s"
    )
