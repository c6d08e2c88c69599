"""A service process killed (SIGKILL) in the middle of its work: the lease runs out, the event is
delivered again, the month completes, and nothing is half-written or counted twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
# The installed console script, exactly as a person runs it.
CLI = [str(Path(sys.executable).with_name("cashmatch"))]


@pytest.fixture
def env(tmp_path, small_warehouse):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASHMATCH_")}
    env.update(
        CASHMATCH_WORKSPACE=str(tmp_path / "ws"),
        CASHMATCH_WAREHOUSE=str(small_warehouse),
        CASHMATCH_LEASE_S="2",
        CASHMATCH_MIN_BACKOFF_S="0",
    )
    return env


def cli(env, *args) -> str:
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def leased(env, topic: str) -> bool:
    """Read the bus file directly: a CLI call is too slow to catch a short piece of work."""
    from cashmatch.adapters.local.bus import SqliteEventBus
    from cashmatch.domain.subscriptions import SUBSCRIPTIONS

    bus = SqliteEventBus(Path(env["CASHMATCH_WORKSPACE"]) / "bus.sqlite3", SUBSCRIPTIONS)
    try:
        return any(r.state == "leased" for r in bus.log(topic=topic))
    finally:
        bus.close()


def visible_files(workspace: Path) -> set[str]:
    root = workspace / "blobs"
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and ".locks" not in p.parts and not p.name.endswith(".tmp")
    }


@pytest.mark.parametrize(
    ("service", "topic"),
    [("collector", "month.closed"), ("trainer", "dataset.ready"), ("evaluator", "model.trained")],
)
def test_killed_mid_work_then_redelivered(env, tmp_path, service, topic):
    cli(env, "publish", "month.closed", "--month", "2025-03")
    upstream = {"collector": [], "trainer": ["collector"], "evaluator": ["collector", "trainer"]}
    for name in upstream[service]:
        cli(env, "run", "--service", name)

    worker = subprocess.Popen(
        [*CLI, "worker", service, "--poll", "0.05"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not leased(env, topic):
            assert time.monotonic() < deadline, "the worker never took the event"
            time.sleep(0.005)
        # Freeze it at once (wherever it is in its work), then kill it for real.
        worker.send_signal(signal.SIGSTOP)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)

    # The next run waits for the dead worker's lease to expire and finishes the month.
    cli(env, "run")
    log = json.loads(cli(env, "events", "--json", "--limit", "200"))
    assert not [r for r in log if r["state"] == "dead"], log
    taken = next(r for r in log if r["topic"] == topic and r["subscription"] == service)
    assert taken["state"] == "done"
    assert taken["attempts"] == 2, "the killed attempt counts; the second one finished"
    models = json.loads(cli(env, "models", "--json"))
    assert len(models) == 1, "one model for one dataset, however often it ran"
    assert models[0]["champion"] and models[0]["deployed"]
    assert len({r["message_id"] for r in log if r["topic"] == "dataset.ready"}) == 1
    assert len({r["message_id"] for r in log if r["topic"] == "model.trained"}) == 1
    files = visible_files(Path(env["CASHMATCH_WORKSPACE"]))
    manifests = [f for f in files if f.startswith("datasets/manifests/")]
    assert manifests == ["datasets/manifests/2025-03.json"]
    assert len([f for f in files if f.startswith("models/")]) == 1
    # every visible file is whole: the test set and slices match their recorded digests
    ws = Path(env["CASHMATCH_WORKSPACE"]) / "blobs"
    test_manifest = json.loads((ws / "datasets/test/manifest.json").read_text())
    import hashlib

    for name, digest in test_manifest["digests"].items():
        assert (
            hashlib.sha256((ws / f"datasets/test/{name}.parquet").read_bytes()).hexdigest()
            == digest
        )
