"""PubSubEventBus with the real google-cloud-pubsub clients against the fake Pub/Sub server, its
journal in Cloud Storage (gcp-storage-emulator): the local bus's contract where Pub/Sub allows."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import pytest

from shared.adapters.gcp.bus import PubSubEventBus
from shared.adapters.local.bus import RetryPolicy
from shared.ports import Delivery, EventBus

pytestmark = pytest.mark.integration

PROJECT = "test-project"
SUBSCRIPTIONS = {"collector": "month.closed", "trainer": "dataset.ready"}
AUDIT = "dead-letter-audit"  # a test-side subscription to the dead-letter topic

MakeBus = Callable[..., PubSubEventBus]


@pytest.fixture
def make_bus(pubsub_server, gcs_store) -> Iterator[MakeBus]:
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    buses: list[PubSubEventBus] = []

    def make(
        subscriptions: dict[str, str] = SUBSCRIPTIONS,
        retry: RetryPolicy | None = None,
        journal: bool = True,
    ) -> PubSubEventBus:
        bus = PubSubEventBus(
            PublisherClient(),
            SubscriberClient(),
            PROJECT,
            subscriptions,
            journal=gcs_store if journal else None,
            retry=retry or RetryPolicy(min_backoff_s=0),
            pull_timeout_s=5,
        )
        bus.ensure_topology()
        if not buses:
            bus.subscriber.create_subscription(
                request={
                    "name": bus.subscription_path(AUDIT),
                    "topic": bus.topic_path("dead-letter"),
                }
            )
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        bus.close()


@pytest.fixture
def bus(make_bus: MakeBus) -> PubSubEventBus:
    return make_bus()


def pull_one(bus: PubSubEventBus, subscription: str) -> Delivery:
    deliveries = bus.pull(subscription)
    assert len(deliveries) == 1, deliveries
    return deliveries[0]


def records(bus: PubSubEventBus, message_id: str) -> dict:
    return {r.subscription: r for r in bus.log() if r.message_id == message_id}


def dead_letter_messages(bus: PubSubEventBus) -> list:
    """What reached the dead-letter topic (read through a test subscription, then acked)."""
    response = bus.subscriber.pull(
        request={"subscription": bus.subscription_path(AUDIT), "max_messages": 10}, timeout=5
    )
    if response.received_messages:
        bus.subscriber.acknowledge(
            request={
                "subscription": bus.subscription_path(AUDIT),
                "ack_ids": [m.ack_id for m in response.received_messages],
            }
        )
    return [m.message for m in response.received_messages]


def expire_lease(bus: PubSubEventBus, delivery: Delivery) -> None:
    """What a subscriber that dies does, without waiting out the 10 s minimum lease."""
    bus.subscriber.modify_ack_deadline(
        request={
            "subscription": bus.subscription_path(delivery.subscription),
            "ack_ids": [delivery.ack_id],
            "ack_deadline_seconds": 0,
        }
    )


def test_satisfies_the_port(bus: PubSubEventBus) -> None:
    assert isinstance(bus, EventBus)


def test_publish_pull_ack(bus: PubSubEventBus, pubsub_server) -> None:
    assert bus.publish("month.closed", b'{"month": "2025-02"}', {"k": "v"}, message_id="m1")
    assert bus.pending() == 1
    assert records(bus, "m1")["collector"].state == "pending"

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
    assert pubsub_server.state.backlog(bus.subscription_path("collector")) == 0


def test_pull_in_publish_order_up_to_max(bus: PubSubEventBus) -> None:
    for i in range(5):
        bus.publish("month.closed", b"x", {}, message_id=f"m{i}")
    first = bus.pull("collector", max_messages=3)
    rest = bus.pull("collector", max_messages=10)
    assert [d.message_id for d in first] == ["m0", "m1", "m2"]
    assert [d.message_id for d in rest] == ["m3", "m4"]
    assert len({d.ack_id for d in first + rest}) == 5


def test_same_message_id_is_published_once(
    bus: PubSubEventBus, pubsub_server, caplog: pytest.LogCaptureFixture
) -> None:
    assert bus.publish("month.closed", b"one", {"a": "1"}, message_id="m1")
    assert not bus.publish("month.closed", b"one", {"a": "1"}, message_id="m1")
    with caplog.at_level(logging.WARNING):
        assert not bus.publish("dataset.ready", b"two", {}, message_id="m1")
    assert "already taken by a different message" in caplog.text
    assert bus.get_message("m1") == ("month.closed", b"one", {"a": "1"})
    # Pub/Sub itself received the message once.
    assert pubsub_server.state.backlog(bus.subscription_path("collector")) == 1
    assert pubsub_server.state.backlog(bus.subscription_path("trainer")) == 0
    assert bus.pending() == 1
    assert len(bus.log()) == 1


def test_a_publish_that_died_before_pubsub_confirmed_is_sent_again(
    bus: PubSubEventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(*args, **kwargs):
        raise ConnectionError("Pub/Sub unreachable")

    monkeypatch.setattr(bus, "_send", unavailable)
    with pytest.raises(ConnectionError):
        bus.publish("month.closed", b"x", {}, message_id="m1")
    monkeypatch.undo()
    assert bus.publish("month.closed", b"x", {}, message_id="m1")  # the retry is not "a duplicate"
    assert pull_one(bus, "collector").message_id == "m1"
    assert not bus.publish("month.closed", b"x", {}, message_id="m1")


def test_fan_out_to_every_subscription_of_the_topic(make_bus: MakeBus) -> None:
    bus = make_bus({"collector": "month.closed", "auditor": "month.closed", "trainer": "x"})
    bus.publish("month.closed", b"x", {}, message_id="m1")
    assert bus.pending() == 2
    assert bus.pull("trainer") == []
    bus.ack(pull_one(bus, "collector"))
    assert bus.pending() == 1
    audit = pull_one(bus, "auditor")
    bus.nack(audit, reason="busy")
    by_subscription = records(bus, "m1")
    assert by_subscription["collector"].state == "done"
    assert (by_subscription["auditor"].state, by_subscription["auditor"].detail) == (
        "retrying",
        "busy",
    )


def test_unknown_subscription_is_an_error(bus: PubSubEventBus) -> None:
    with pytest.raises(KeyError, match="nope"):
        bus.pull("nope")


def test_message_without_subscription_is_kept_and_logged(bus: PubSubEventBus) -> None:
    assert bus.publish("dead-letter", b"v7", {"version": "7"}, message_id="m1")
    assert bus.pending() == 0
    [record] = bus.log()
    assert (record.subscription, record.state, record.topic) == (None, "published", "dead-letter")
    assert bus.get_message("m1") == ("dead-letter", b"v7", {"version": "7"})
    assert bus.history("m1") == []
    with pytest.raises(KeyError):
        bus.history("unknown")
    with pytest.raises(KeyError):
        bus.get_message("unknown")


def test_log_is_newest_first_and_filters_by_topic(bus: PubSubEventBus) -> None:
    bus.publish("month.closed", b"", {"n": "a"}, message_id="a")
    bus.publish("dataset.ready", b"", {"n": "b"}, message_id="b")
    bus.publish("month.closed", b"", {"n": "c"}, message_id="c")
    assert [r.message_id for r in bus.log()] == ["c", "b", "a"]
    assert [r.message_id for r in bus.log(limit=2)] == ["c", "b"]
    assert [r.message_id for r in bus.log(topic="month.closed")] == ["c", "a"]


def test_nack_redelivers_then_dead_letters_with_reason(make_bus: MakeBus) -> None:
    bus = make_bus(retry=RetryPolicy(max_attempts=3, min_backoff_s=0, max_backoff_s=0))
    bus.publish("month.closed", b"x", {"k": "v"}, message_id="m1")

    bus.nack(pull_one(bus, "collector"), reason="warehouse down 1")
    record = records(bus, "m1")["collector"]
    assert (record.state, record.attempts, record.detail) == ("retrying", 1, "warehouse down 1")
    assert bus.pending() == 1
    second = pull_one(bus, "collector")  # modify-ack-deadline 0: due again at once
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
    [parked] = dead_letter_messages(bus)
    assert parked.data == b"x"
    assert parked.attributes["reason"] == "warehouse down 3"
    assert parked.attributes["subscription"] == "collector"
    assert parked.attributes["k"] == "v"
    assert [(h["attempt"], h["outcome"], h["detail"]) for h in bus.history("m1")] == [
        (1, "retry", "warehouse down 1"),
        (2, "retry", "warehouse down 2"),
        (3, "dead", "warehouse down 3"),
    ]


def test_nack_backoff_is_the_lease(make_bus: MakeBus) -> None:
    bus = make_bus(retry=RetryPolicy(min_backoff_s=1, max_backoff_s=1))
    bus.publish("month.closed", b"x", {}, message_id="m1")
    bus.nack(pull_one(bus, "collector"), reason="later")
    assert bus.pull("collector") == []  # not before the backoff
    time.sleep(1.1)
    assert pull_one(bus, "collector").attempt == 2


def test_park_dead_letters_at_once_with_the_reason(bus: PubSubEventBus, pubsub_server) -> None:
    bus.publish("month.closed", b"not json", {}, message_id="m1")
    bus.park(pull_one(bus, "collector"), reason="malformed event: not JSON")
    [dead] = bus.dead_letters()
    assert (dead.attempts, dead.detail) == (1, "malformed event: not JSON")
    assert bus.pending() == 0
    assert bus.pull("collector") == []
    assert pubsub_server.state.backlog(bus.subscription_path("collector")) == 0  # acked
    [parked] = dead_letter_messages(bus)
    assert parked.attributes["reason"] == "malformed event: not JSON"
    assert parked.attributes["cashmatch_original_id"] == "m1"
    assert bus.history("m1")[-1]["outcome"] == "parked"


def test_dead_letters_published_by_the_push_entry_point_are_listed(bus: PubSubEventBus) -> None:
    # services/entrypoint.py parks a pushed event by publishing it to the dead-letter topic.
    bus.publish(
        "dead-letter",
        b"{}",
        {"reason": "MalformedEvent: no month", "service": "collector"},
        message_id="dead/collector/e1",
    )
    [dead] = bus.dead_letters()
    assert (dead.message_id, dead.subscription, dead.detail) == (
        "dead/collector/e1",
        "collector",
        "MalformedEvent: no month",
    )


def test_redrive_makes_dead_deliveries_due_again(make_bus: MakeBus) -> None:
    bus = make_bus({"collector": "month.closed", "auditor": "month.closed"})
    bus.publish("month.closed", b"x", {"k": "v"}, message_id="m1")
    bus.park(pull_one(bus, "collector"), reason="bad 1")
    bus.park(pull_one(bus, "auditor"), reason="bad 2")
    assert bus.redrive("unknown") == 0

    assert bus.redrive("m1", subscription="auditor") == 1
    assert [d.subscription for d in bus.dead_letters()] == ["collector"]
    assert bus.pending() == 1
    assert bus.pull("collector") == []  # the republished message is addressed to the auditor
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


def test_expired_lease_is_redelivered_then_dead_lettered(make_bus: MakeBus) -> None:
    bus = make_bus(retry=RetryPolicy(max_attempts=2, min_backoff_s=0))
    bus.publish("month.closed", b"x", {}, message_id="m1")
    first = pull_one(bus, "collector")  # ... and the worker dies
    expire_lease(bus, first)
    second = pull_one(bus, "collector")
    assert second.attempt == 2
    assert bus.pending() == 1

    expire_lease(bus, second)  # dies again, on the last allowed attempt
    assert bus.pull("collector") == []
    [dead] = bus.dead_letters()
    assert dead.attempts == 2
    assert dead.detail == "lease expired after 2 attempts (subscriber died?)"
    assert bus.pending() == 0
    assert [(h["attempt"], h["outcome"]) for h in bus.history("m1")] == [
        (1, "lease expired"),
        (2, "dead"),
    ]
    [parked] = dead_letter_messages(bus)
    assert parked.attributes["reason"] == dead.detail


def test_stale_handle_after_lease_loss_changes_nothing(
    bus: PubSubEventBus, caplog: pytest.LogCaptureFixture
) -> None:
    bus.publish("month.closed", b"x", {}, message_id="m1")
    slow = pull_one(bus, "collector")
    expire_lease(bus, slow)
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


def test_a_redelivery_of_a_settled_message_is_acked_and_skipped(
    bus: PubSubEventBus, pubsub_server
) -> None:
    bus.publish("month.closed", b"x", {}, message_id="m1")
    delivery = pull_one(bus, "collector")
    expire_lease(bus, delivery)  # Pub/Sub will deliver it again: the ack below comes too late
    bus.ack(delivery, outcome="done late")
    assert pubsub_server.state.backlog(bus.subscription_path("collector")) == 1
    assert bus.pull("collector") == []  # at-least-once duplicate: settled already, acked again
    assert pubsub_server.state.backlog(bus.subscription_path("collector")) == 0
    assert records(bus, "m1")["collector"].detail == "done late"


def test_messages_from_other_publishers_are_journalled_when_pulled(bus: PubSubEventBus) -> None:
    future = bus.publisher.publish(bus.topic_path("month.closed"), b"raw", source="finance")
    pubsub_id = future.result(timeout=10)
    delivery = pull_one(bus, "collector")
    assert (delivery.message_id, delivery.attributes) == (pubsub_id, {"source": "finance"})
    bus.ack(delivery, outcome="ok")
    assert bus.get_message(pubsub_id) == ("month.closed", b"raw", {"source": "finance"})
    assert records(bus, pubsub_id)["collector"].state == "done"


def test_without_a_journal_the_views_say_so(make_bus: MakeBus) -> None:
    bus = make_bus(journal=False)
    assert bus.publish("month.closed", b"x", {}, message_id="m1")
    delivery = pull_one(bus, "collector")
    assert delivery.message_id == "m1"
    bus.ack(delivery)
    for view in (bus.log, bus.dead_letters, bus.pending):
        with pytest.raises(NotImplementedError, match="journal"):
            view()
    with pytest.raises(NotImplementedError, match="journal"):
        bus.get_message("m1")
