"""A service process killed (SIGKILL) in the middle of its work: the lease runs out, the event is
delivered again, the month completes, and nothing is half-written or counted twice."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
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
    """Read the bus file directly: a CLI call costs seconds per look."""
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


def blocked_on(pid: int, lock: Path) -> bool:
    """True when process `pid` waits for the flock on `lock` (Linux's /proc/locks lists each
    waiter as a "->" line naming its pid and the file's inode)."""
    inode = f":{lock.stat().st_ino} "
    return any(
        line.split()[1] == "->" and f" {pid} " in line and inode in line
        for line in Path("/proc/locks").read_text().splitlines()
    )


def written_last(env, service: str) -> str:
    """A blob the service writes late in its work, after other files of the same delivery."""
    from cashmatch.domain.events import parse_event
    from cashmatch.domain.matching import MatcherConfig
    from cashmatch.service_layer.training import model_version

    if service == "collector":
        return "datasets/manifests/2025-03.json"
    log = json.loads(cli(env, "events", "--json", "--limit", "200"))
    topic = "dataset.ready" if service == "trainer" else "model.trained"
    (message_id,) = {r["message_id"] for r in log if r["topic"] == topic}
    from cashmatch.adapters.local.bus import SqliteEventBus
    from cashmatch.domain.subscriptions import SUBSCRIPTIONS

    with SqliteEventBus(Path(env["CASHMATCH_WORKSPACE"]) / "bus.sqlite3", SUBSCRIPTIONS) as bus:
        event = parse_event(bus.get_message(message_id)[1])
    if service == "trainer":  # after the artifact and its digest: the registry's record
        return (
            f"registry/models/{model_version(event.data['dataset_version'], MatcherConfig())}.json"
        )
    return f"registry/verdicts/{event.data['model_version']}.json"  # after the promotion


@contextlib.contextmanager
def holding(workspace: Path, key: str):
    """Hold the blob store's lock of `key` (as a concurrent writer would): a service that
    writes `key` waits there, in the middle of its work, until it is released."""
    lock = workspace / "blobs" / ".locks" / (key.replace("/", "__") + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield lock
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.mark.parametrize(
    ("service", "topic"),
    [("collector", "month.closed"), ("trainer", "dataset.ready"), ("evaluator", "model.trained")],
)
def test_killed_mid_work_then_redelivered(env, tmp_path, service, topic):
    cli(env, "publish", "month.closed", "--month", "2025-03")
    upstream = {"collector": [], "trainer": ["collector"], "evaluator": ["collector", "trainer"]}
    for name in upstream[service]:
        cli(env, "run", "--service", name)

    workspace = Path(env["CASHMATCH_WORKSPACE"])
    with holding(workspace, written_last(env, service)) as lock:
        worker = subprocess.Popen(
            [*CLI, "worker", service, "--poll", "0.05"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # No race with the work: it cannot get past the held lock, so wait (generously,
            # for a slow machine) until it is leased and waiting there, with files written.
            deadline = time.monotonic() + 300
            while not (leased(env, topic) and blocked_on(worker.pid, lock)):
                assert worker.poll() is None, "the worker died on its own"
                assert time.monotonic() < deadline, "the worker never reached the held lock"
                time.sleep(0.05)
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
    for name, digest in test_manifest["digests"].items():
        assert (
            hashlib.sha256((ws / f"datasets/test/{name}.parquet").read_bytes()).hexdigest()
            == digest
        )
