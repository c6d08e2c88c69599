"""SqliteEventBus: the local stack's durable, at-least-once event bus on an SQLite file.

What every bus must do is in test_bus_contract.py; here is what is the SQLite bus's own: its
clock, backoff schedule, the file shared by processes, and reopening."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import sqlite3
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from cashmatch.adapters.local.bus import SqliteEventBus
from cashmatch.ports import Delivery, RetryPolicy

pytestmark = pytest.mark.integration

SUBSCRIPTIONS = {"collector": "month.closed", "trainer": "dataset.ready"}
DEFAULT_RETRY = RetryPolicy()
T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


MakeBus = Callable[..., SqliteEventBus]


@pytest.fixture
def make_bus(tmp_path: Path, clock: FakeClock) -> Iterator[MakeBus]:
    buses: list[SqliteEventBus] = []

    def make(
        subscriptions: dict[str, str] = SUBSCRIPTIONS,
        retry: RetryPolicy = DEFAULT_RETRY,
        path: Path | None = None,
    ) -> SqliteEventBus:
        bus = SqliteEventBus(path or tmp_path / "bus.sqlite", subscriptions, retry, clock=clock)
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        bus.close()


@pytest.fixture
def bus(make_bus: MakeBus) -> SqliteEventBus:
    return make_bus()


def pull_one(bus: SqliteEventBus, subscription: str) -> Delivery:
    deliveries = bus.pull(subscription)
    assert len(deliveries) == 1, deliveries
    return deliveries[0]


def records(bus: SqliteEventBus, message_id: str) -> dict[str | None, Any]:
    return {r.subscription: r for r in bus.log() if r.message_id == message_id}


def test_times_come_from_the_clock(bus: SqliteEventBus, clock: FakeClock) -> None:
    bus.publish("month.closed", b"x", {}, message_id="m1")
    delivery = pull_one(bus, "collector")
    assert delivery.published_at == T0
    clock.advance(2)
    bus.ack(delivery, outcome="ok")
    assert records(bus, "m1")["collector"].updated_at == T0 + dt.timedelta(seconds=2)
    assert [h["at"] for h in bus.history("m1")] == [T0 + dt.timedelta(seconds=2)]


def test_a_lease_runs_out_after_lease_s(make_bus: MakeBus, clock: FakeClock) -> None:
    bus = make_bus(retry=RetryPolicy(lease_s=30))
    bus.publish("month.closed", b"x", {}, message_id="m1")
    assert pull_one(bus, "collector").attempt == 1  # ... and the worker dies
    clock.advance(29)
    assert bus.pull("collector") == []
    clock.advance(2)
    assert pull_one(bus, "collector").attempt == 2


def test_subscriptions_registered_by_another_process_receive(
    make_bus: MakeBus, tmp_path: Path
) -> None:
    # Each worker may know only its own subscription; a publisher still fans out to all.
    collector = make_bus({"collector": "month.closed"})
    trainer = make_bus({"trainer": "dataset.ready"})
    assert collector.publish("dataset.ready", b"x", {}, message_id="d1")
    assert pull_one(trainer, "trainer").message_id == "d1"
    assert collector.pull("trainer") == []  # known from the file, even if not from its dict


def test_nack_backs_off_then_dead_letters_with_last_reason(
    make_bus: MakeBus, clock: FakeClock
) -> None:
    bus = make_bus(retry=RetryPolicy(max_attempts=3, min_backoff_s=10, max_backoff_s=15))
    bus.publish("month.closed", b"x", {}, message_id="m1")

    bus.nack(pull_one(bus, "collector"), reason="warehouse down 1")
    record = records(bus, "m1")["collector"]
    assert (record.state, record.attempts, record.detail) == ("retrying", 1, "warehouse down 1")
    assert bus.pending() == 1
    clock.advance(9.9)
    assert bus.pull("collector") == []  # backoff 10 s after attempt 1
    clock.advance(0.2)
    second = pull_one(bus, "collector")
    assert second.attempt == 2

    bus.nack(second, reason="warehouse down 2")
    clock.advance(14.9)
    assert bus.pull("collector") == []  # 20 s capped at 15 s after attempt 2
    clock.advance(0.2)
    third = pull_one(bus, "collector")
    assert third.attempt == 3

    bus.nack(third, reason="warehouse down 3")
    assert bus.pending() == 0
    [dead] = bus.dead_letters()
    assert (dead.message_id, dead.subscription, dead.state) == ("m1", "collector", "dead")
    assert (dead.attempts, dead.detail) == (3, "warehouse down 3")
    clock.advance(3600)
    assert bus.pull("collector") == []
    assert [(h["attempt"], h["outcome"], h["detail"]) for h in bus.history("m1")] == [
        (1, "retry", "warehouse down 1"),
        (2, "retry", "warehouse down 2"),
        (3, "dead", "warehouse down 3"),
    ]


def test_backoff_schedule() -> None:
    policy = RetryPolicy(min_backoff_s=1, max_backoff_s=60)
    assert [policy.backoff(n).total_seconds() for n in range(1, 9)] == [
        1,
        2,
        4,
        8,
        16,
        32,
        60,
        60,
    ]
    assert policy.backoff(10_000).total_seconds() == 60
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_expired_lease_nobody_took_over_can_still_be_acked(
    make_bus: MakeBus, clock: FakeClock
) -> None:
    bus = make_bus(retry=RetryPolicy(lease_s=30))
    bus.publish("month.closed", b"x", {}, message_id="m1")
    slow = pull_one(bus, "collector")
    clock.advance(60)
    bus.ack(slow, outcome="slow but done")
    assert records(bus, "m1")["collector"].state == "done"
    assert bus.pull("collector") == []


def test_malformed_ack_id_is_an_error(bus: SqliteEventBus) -> None:
    bus.publish("month.closed", b"x", {}, message_id="m1")
    delivery = pull_one(bus, "collector")
    forged = Delivery(**{**delivery.__dict__, "ack_id": "garbage"})
    with pytest.raises(ValueError, match="malformed ack_id"):
        bus.ack(forged)


def test_naive_clock_is_rejected(tmp_path: Path) -> None:
    naive = SqliteEventBus(tmp_path / "b.sqlite", SUBSCRIPTIONS, clock=dt.datetime.now)
    with naive, pytest.raises(ValueError, match="timezone-aware"):
        naive.publish("month.closed", b"x", {}, message_id="m1")


def test_reopening_the_file_keeps_everything(
    make_bus: MakeBus, clock: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "nested" / "bus.sqlite"
    first = make_bus(path=path)
    first.publish("month.closed", b"a", {"n": "1"}, message_id="done")
    first.publish("month.closed", b"b", {}, message_id="parked")
    first.publish("month.closed", b"c", {}, message_id="retrying")
    first.publish("month.closed", b"d", {}, message_id="leased")
    first.publish("nobody.listens", b"e", {}, message_id="orphan")
    first.ack(pull_one(first, "collector"), outcome="ok")
    first.park(pull_one(first, "collector"), reason="bad")
    first.nack(pull_one(first, "collector"), reason="later")
    leased = pull_one(first, "collector")
    before = (first.log(), first.dead_letters(), first.pending(), first.history("retrying"))
    first.close()

    second = make_bus(path=path)
    after = (second.log(), second.dead_letters(), second.pending(), second.history("retrying"))
    assert after == before
    assert second.get_message("done") == ("month.closed", b"a", {"n": "1"})
    second.ack(leased, outcome="acked through a new handle")
    clock.advance(1.5)
    assert pull_one(second, "collector").message_id == "retrying"
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# -- several processes --------------------------------------------------------------------
# The workers below run in spawned interpreters, so they are module-level and use the real clock.


def _drain_worker(path: str, overlap: Any, barrier: Any, results: Any) -> None:
    try:
        processed: list[tuple[str, int]] = []
        with SqliteEventBus(Path(path), {"collector": "month.closed"}) as bus:
            barrier.wait(timeout=60)
            waited = False
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                batch = bus.pull("collector", max_messages=1)
                if not batch:
                    if bus.pending() == 0:
                        break
                    time.sleep(0.002)
                    continue
                for delivery in batch:
                    processed.append((delivery.message_id, delivery.attempt))
                    if not waited:
                        # Hold the first lease until the other worker holds one too: both take
                        # part by construction, with two leases out at once.
                        overlap.wait(timeout=60)
                        waited = True
                    bus.ack(delivery, outcome=f"pid {os.getpid()}")
        results.put(("ok", processed))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def _open_and_publish_worker(path: str, index: int, barrier: Any, results: Any) -> None:
    try:
        barrier.wait(timeout=60)
        with SqliteEventBus(Path(path), {"collector": "month.closed"}) as bus:
            bus.publish("month.closed", b"x", {}, message_id=f"m{index}")
        results.put(("ok", index))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def _run_workers(target: Callable[..., None], args_per_worker: list[tuple[Any, ...]]) -> list[Any]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(args_per_worker))
    results = ctx.Queue()
    processes = [
        ctx.Process(target=target, args=(*args, barrier, results)) for args in args_per_worker
    ]
    for process in processes:
        process.start()
    try:
        # Read before joining: a child blocks on exit until its queued result is consumed.
        outcomes = [results.get(timeout=180) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()
        results.close()
        results.join_thread()
    errors = [value for status, value in outcomes if status == "error"]
    assert not errors, "\n".join(errors)
    return [value for _, value in outcomes]


def test_two_processes_share_one_subscription_without_double_leases(make_bus: MakeBus) -> None:
    bus = make_bus({"collector": "month.closed"})
    for i in range(200):
        bus.publish("month.closed", str(i).encode(), {}, message_id=f"m{i:03d}")
    path = str(bus.path)

    overlap = multiprocessing.get_context("spawn").Barrier(2)
    per_worker = _run_workers(_drain_worker, [(path, overlap), (path, overlap)])

    everything = [item for processed in per_worker for item in processed]
    counts = Counter(message_id for message_id, _ in everything)
    assert set(counts) == {f"m{i:03d}" for i in range(200)}  # none lost
    assert max(counts.values()) == 1  # none processed twice
    assert {attempt for _, attempt in everything} == {1}
    assert all(per_worker), "both workers took part"  # guaranteed by the overlap barrier
    assert bus.pending() == 0
    records_ = bus.log(limit=500)
    assert len(records_) == 200
    assert {r.state for r in records_} == {"done"}
    assert all(len(bus.history(r.message_id)) == 1 for r in records_[:20])


def test_processes_opening_a_fresh_file_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "fresh" / "bus.sqlite")
    _run_workers(_open_and_publish_worker, [(path, i) for i in range(4)])
    with SqliteEventBus(Path(path), {"collector": "month.closed"}) as bus:
        assert sorted(r.message_id for r in bus.log()) == ["m0", "m1", "m2", "m3"]
        assert bus.pending() == 4


def test_a_binary_mode_message_on_the_bus_runs_the_chain(make_ports, small_warehouse):
    """A month.closed published in the CloudEvents binary content mode (context as attributes)
    is delivered and handled like a structured one."""
    from cashmatch.entrypoints.service_table import handlers
    from cashmatch.service_layer.dispatch import run_until_idle

    ports = make_ports(warehouse=str(small_warehouse))
    attributes = {
        "ce-specversion": "1.0",
        "ce-type": "com.cashmatch.month.closed.v1",
        "ce-id": "finance-2025-03",
        "ce-source": "/finance-system",
        "ce-time": "2025-04-01T06:00:00Z",
        "month": "2025-03",
    }
    ports.bus.publish(
        "month.closed", b'{"month": "2025-03"}', attributes, message_id="finance-2025-03"
    )
    run_until_idle(ports, handlers(["collector"]), timeout_s=120)
    assert ports.bus.dead_letters() == []
    assert len({r.message_id for r in ports.bus.log(topic="dataset.ready")}) == 1


def test_cashmatch_publish_binary_sends_the_binary_mode_and_the_chain_takes_it(
    make_ports, small_warehouse
):
    import json
    import subprocess
    import sys

    from cashmatch.entrypoints.service_table import handlers
    from cashmatch.service_layer.dispatch import run_until_idle

    ports = make_ports(warehouse=str(small_warehouse))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASHMATCH_")}
    env |= {
        "CASHMATCH_WORKSPACE": str(ports.settings.workspace),
        "CASHMATCH_WAREHOUSE": str(small_warehouse),
    }
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("cashmatch")),
            *("publish", "month.closed", "--month", "2025-03", "--binary"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and "binary mode" in done.stdout, done.stderr
    (record,) = ports.bus.log(topic="month.closed")
    data, attributes = ports.bus.get_message(record.message_id)[1:3]
    assert attributes["ce-specversion"] == "1.0" and json.loads(data) == {"month": "2025-03"}
    run_until_idle(ports, handlers(["collector"]), timeout_s=120)
    assert ports.bus.dead_letters() == []
    assert len({r.message_id for r in ports.bus.log(topic="dataset.ready")}) == 1
