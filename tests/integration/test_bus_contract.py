"""One contract for every EventBus adapter: the SQLite bus of the local stack, and Pub/Sub through
the real google-cloud-pubsub clients against the fake server (its journal in the Cloud Storage
emulator). What only one of them does is tested beside it: test_local_bus.py and
gcp/test_pubsub_bus.py."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cashmatch.ports import Delivery, EventBus, RetryPolicy

pytestmark = pytest.mark.integration

SUBSCRIPTIONS = {"collector": "month.closed", "trainer": "dataset.ready"}
# Retries due at once, so a test needs no clock; the leases are what the tests expire by hand.
NO_BACKOFF = RetryPolicy(min_backoff_s=0, max_backoff_s=0)


@dataclass
class BusKit:
    """An adapter under test: how to make one, and how to make a lease run out."""

    make: Callable[..., EventBus]  # make(subscriptions=..., retry=...)
    expire_lease: Callable[[EventBus, Delivery], None]  # what a subscriber that dies does


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture(params=["sqlite", "pubsub"])
def kit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BusKit]:
    buses: list[Any] = []
    if request.param == "sqlite":
        from cashmatch.adapters.local.bus import SqliteEventBus

        clock = FakeClock()

        def make_sqlite(subscriptions=SUBSCRIPTIONS, retry=NO_BACKOFF) -> EventBus:
            bus = SqliteEventBus(tmp_path / "bus.sqlite", subscriptions, retry, clock=clock)
            buses.append(bus)
            return bus

        def advance_past_lease(bus: Any, delivery: Delivery) -> None:
            clock.advance(bus.retry.lease_s + 1)

        yield BusKit(make_sqlite, advance_past_lease)
    else:
        from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

        from cashmatch.adapters.gcp.bus import PubSubEventBus
        from tests.fakes.pubsub_server import end_lease

        request.getfixturevalue("pubsub_server")
        journal = request.getfixturevalue("gcs_store")

        def make_pubsub(subscriptions=SUBSCRIPTIONS, retry=NO_BACKOFF) -> EventBus:
            bus = PubSubEventBus(
                PublisherClient(),
                SubscriberClient(),
                "test-project",
                subscriptions,
                journal=journal,
                retry=retry,
                pull_timeout_s=5,
            )
            bus.ensure_topology(["model.deployed"])
            buses.append(bus)
            return bus

        yield BusKit(make_pubsub, end_lease)
    for bus in buses:
        bus.close()


def pull_one(bus: EventBus, subscription: str) -> Delivery:
    deliveries = bus.pull(subscription)
    assert len(deliveries) == 1, deliveries
    return deliveries[0]


def records(bus: EventBus, message_id: str) -> dict[str | None, Any]:
    return {r.subscription: r for r in bus.log() if r.message_id == message_id}


def test_satisfies_the_port(kit: BusKit) -> None:
    assert isinstance(kit.make(), EventBus)


def test_publish_pull_ack(kit: BusKit) -> None:
    bus = kit.make()
    assert bus.publish("month.closed", b'{"month": "2025-02"}', {"k": "v"}, message_id="m1")
    assert bus.pending() == 1

    delivery = pull_one(bus, "collector")
    assert delivery.message_id == "m1"
    assert delivery.topic == "month.closed"
    assert delivery.subscription == "collector"
    assert delivery.data == b'{"month": "2025-02"}'
    assert delivery.attributes == {"k": "v"}  # the bus's own attributes are not shown
    assert delivery.attempt == 1
    assert delivery.published_at.tzinfo is not None
    assert bus.pull("collector") == []  # leased: nobody else gets it
    assert records(bus, "m1")["collector"].state == "leased"

    bus.ack(delivery, outcome="dataset 2025-02 written")
    assert bus.pending() == 0
    record = records(bus, "m1")["collector"]
    assert (record.state, record.attempts, record.detail) == ("done", 1, "dataset 2025-02 written")
    assert record.attributes == {"k": "v"}
    assert bus.get_message("m1") == ("month.closed", b'{"month": "2025-02"}', {"k": "v"})
    [entry] = bus.history("m1")
    assert {k: entry[k] for k in ("subscription", "attempt", "outcome", "detail")} == {
        "subscription": "collector",
        "attempt": 1,
        "outcome": "done",
        "detail": "dataset 2025-02 written",
    }


def test_pull_in_publish_order_up_to_max(kit: BusKit) -> None:
    bus = kit.make()
    for i in range(5):
        bus.publish("month.closed", b"x", {}, message_id=f"m{i}")
    first = bus.pull("collector", max_messages=3)
    rest = bus.pull("collector", max_messages=10)
    assert [d.message_id for d in first] == ["m0", "m1", "m2"]
    assert [d.message_id for d in rest] == ["m3", "m4"]
    assert len({d.ack_id for d in first + rest}) == 5


def test_same_message_id_is_published_once(kit: BusKit, caplog: pytest.LogCaptureFixture) -> None:
    bus = kit.make()
    assert bus.publish("month.closed", b"one", {"a": "1"}, message_id="m1")
    assert not bus.publish("month.closed", b"one", {"a": "1"}, message_id="m1")
    with caplog.at_level(logging.WARNING):
        assert not bus.publish("dataset.ready", b"two", {}, message_id="m1")
    assert "already taken by a different message" in caplog.text
    assert bus.get_message("m1") == ("month.closed", b"one", {"a": "1"})
    assert bus.pending() == 1
    assert len(bus.log()) == 1


def test_fan_out_to_every_subscription_of_the_topic(kit: BusKit) -> None:
    bus = kit.make({"collector": "month.closed", "auditor": "month.closed", "trainer": "x"})
    bus.publish("month.closed", b"x", {}, message_id="m1")
    assert bus.pending() == 2
    assert bus.pull("trainer") == []

    bus.ack(pull_one(bus, "collector"))
    assert bus.pending() == 1
    audit = pull_one(bus, "auditor")
    assert audit.attempt == 1
    bus.nack(audit, reason="busy")
    by_subscription = records(bus, "m1")
    assert by_subscription["collector"].state == "done"
    assert (by_subscription["auditor"].state, by_subscription["auditor"].detail) == (
        "retrying",
        "busy",
    )


def test_unknown_subscription_is_an_error(kit: BusKit) -> None:
    with pytest.raises(KeyError, match="nope"):
        kit.make().pull("nope")


def test_message_without_subscription_is_kept_and_logged(kit: BusKit) -> None:
    bus = kit.make()
    assert bus.publish("model.deployed", b"v7", {"version": "7"}, message_id="m1")
    assert bus.pending() == 0
    [record] = bus.log()
    assert (record.subscription, record.state, record.topic) == (
        None,
        "published",
        "model.deployed",
    )
    assert record.attributes == {"version": "7"}
    assert bus.get_message("m1") == ("model.deployed", b"v7", {"version": "7"})
    assert bus.history("m1") == []


def test_log_is_newest_first_and_filters_by_topic(kit: BusKit) -> None:
    bus = kit.make()
    bus.publish("month.closed", b"", {}, message_id="a")
    bus.publish("dataset.ready", b"", {}, message_id="b")
    bus.publish("month.closed", b"", {}, message_id="c")
    assert [r.message_id for r in bus.log()] == ["c", "b", "a"]
    assert [r.message_id for r in bus.log(limit=2)] == ["c", "b"]
    assert [r.message_id for r in bus.log(topic="month.closed")] == ["c", "a"]


def test_nack_redelivers_then_dead_letters_with_the_last_reason(kit: BusKit) -> None:
    bus = kit.make(retry=RetryPolicy(max_attempts=3, min_backoff_s=0, max_backoff_s=0))
    bus.publish("month.closed", b"x", {}, message_id="m1")

    bus.nack(pull_one(bus, "collector"), reason="warehouse down 1")
    record = records(bus, "m1")["collector"]
    assert (record.state, record.attempts, record.detail) == ("retrying", 1, "warehouse down 1")
    assert bus.pending() == 1
    second = pull_one(bus, "collector")
    assert second.attempt == 2
    bus.nack(second, reason="warehouse down 2")
    third = pull_one(bus, "collector")
    assert third.attempt == 3
    bus.nack(third, reason="warehouse down 3")

    assert bus.pending() == 0
    assert bus.pull("collector") == []
    [dead] = bus.dead_letters()
    assert (dead.message_id, dead.subscription, dead.state) == ("m1", "collector", "dead")
    assert (dead.attempts, dead.detail) == (3, "warehouse down 3")
    assert [(h["attempt"], h["outcome"], h["detail"]) for h in bus.history("m1")] == [
        (1, "retry", "warehouse down 1"),
        (2, "retry", "warehouse down 2"),
        (3, "dead", "warehouse down 3"),
    ]


def test_park_dead_letters_at_once(kit: BusKit) -> None:
    bus = kit.make()
    bus.publish("month.closed", b"not json", {}, message_id="m1")
    bus.park(pull_one(bus, "collector"), reason="malformed event: not JSON")
    [dead] = bus.dead_letters()
    assert (dead.attempts, dead.detail) == (1, "malformed event: not JSON")
    assert bus.pending() == 0
    assert bus.pull("collector") == []
    assert bus.history("m1")[-1]["outcome"] == "parked"


def test_redrive_makes_dead_deliveries_due_again(kit: BusKit) -> None:
    bus = kit.make({"collector": "month.closed", "auditor": "month.closed"})
    bus.publish("month.closed", b"x", {"k": "v"}, message_id="m1")
    bus.park(pull_one(bus, "collector"), reason="bad 1")
    bus.park(pull_one(bus, "auditor"), reason="bad 2")
    assert bus.redrive("unknown") == 0

    assert bus.redrive("m1", subscription="auditor") == 1
    assert [d.subscription for d in bus.dead_letters()] == ["collector"]
    assert bus.pending() == 1
    assert bus.pull("collector") == []  # only the auditor's delivery is due again
    again = pull_one(bus, "auditor")
    assert (again.message_id, again.attempt, again.attributes) == ("m1", 1, {"k": "v"})
    bus.ack(again)
    assert bus.redrive("m1", subscription="auditor") == 0  # done is not dead

    assert bus.redrive("m1") == 1
    assert pull_one(bus, "collector").attempt == 1
    outcomes = [(h["subscription"], h["outcome"]) for h in bus.history("m1")]
    assert outcomes == [
        ("collector", "parked"),
        ("auditor", "parked"),
        ("auditor", "redriven"),
        ("auditor", "done"),
        ("collector", "redriven"),
    ]


def test_expired_lease_is_redelivered_then_dead_lettered(kit: BusKit) -> None:
    bus = kit.make(retry=RetryPolicy(max_attempts=2, min_backoff_s=0))
    bus.publish("month.closed", b"x", {}, message_id="m1")
    first = pull_one(bus, "collector")  # ... and the worker dies
    kit.expire_lease(bus, first)
    second = pull_one(bus, "collector")
    assert second.attempt == 2
    assert bus.pending() == 1

    kit.expire_lease(bus, second)  # dies again, on the last allowed attempt
    assert bus.pull("collector") == []
    [dead] = bus.dead_letters()
    assert dead.attempts == 2
    assert dead.detail == "lease expired after 2 attempts (subscriber died?)"
    assert bus.pending() == 0
    assert [(h["attempt"], h["outcome"]) for h in bus.history("m1")] == [
        (1, "lease expired"),
        (2, "dead"),
    ]


def test_stale_handle_after_lease_loss_changes_nothing(
    kit: BusKit, caplog: pytest.LogCaptureFixture
) -> None:
    bus = kit.make()
    bus.publish("month.closed", b"x", {}, message_id="m1")
    slow = pull_one(bus, "collector")
    kit.expire_lease(bus, slow)
    fresh = pull_one(bus, "collector")
    assert fresh.attempt == 2
    assert fresh.ack_id != slow.ack_id

    with caplog.at_level(logging.WARNING):
        bus.ack(slow, outcome="late")
        bus.nack(slow, reason="late failure")
        bus.park(slow, reason="late park")
    assert caplog.text.count("no longer holds the lease") == 3
    record = records(bus, "m1")["collector"]
    assert (record.state, record.attempts) == ("leased", 2)
    assert bus.dead_letters() == []

    bus.ack(fresh, outcome="on time")
    bus.ack(fresh, outcome="twice")  # a second ack of the same handle is a quiet no-op too
    record = records(bus, "m1")["collector"]
    assert (record.state, record.detail) == ("done", "on time")
