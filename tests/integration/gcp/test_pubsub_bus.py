"""PubSubEventBus with the real google-cloud-pubsub clients against the fake Pub/Sub server, its
journal in Cloud Storage (gcp-storage-emulator). What every bus must do is in
test_bus_contract.py; here is what is Pub/Sub's own: the backlog, the dead-letter topic, retried
publishes, other publishers and running without a journal."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from cashmatch.adapters.gcp.bus import PubSubEventBus
from cashmatch.ports import Delivery, RetryPolicy
from tests.fakes.pubsub_server import end_lease

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


def test_an_ack_clears_the_pubsub_backlog(bus: PubSubEventBus, pubsub_server) -> None:
    bus.publish("month.closed", b"x", {}, message_id="m1")
    assert records(bus, "m1")["collector"].state == "pending"
    assert pubsub_server.state.backlog(bus.subscription_path("collector")) == 1
    bus.ack(pull_one(bus, "collector"), outcome="ok")
    assert pubsub_server.state.backlog(bus.subscription_path("collector")) == 0


def test_pubsub_receives_a_duplicate_id_once(bus: PubSubEventBus, pubsub_server) -> None:
    assert bus.publish("month.closed", b"one", {}, message_id="m1")
    assert not bus.publish("month.closed", b"one", {}, message_id="m1")
    assert not bus.publish("dataset.ready", b"two", {}, message_id="m1")
    assert pubsub_server.state.backlog(bus.subscription_path("collector")) == 1
    assert pubsub_server.state.backlog(bus.subscription_path("trainer")) == 0


def test_unknown_message_ids_are_key_errors(bus: PubSubEventBus) -> None:
    with pytest.raises(KeyError):
        bus.history("unknown")
    with pytest.raises(KeyError):
        bus.get_message("unknown")


def test_dead_letters_reach_the_dead_letter_topic_with_their_reason(
    make_bus: MakeBus, pubsub_server
) -> None:
    bus = make_bus(retry=RetryPolicy(max_attempts=1, min_backoff_s=0, max_backoff_s=0))
    bus.publish("month.closed", b"x", {"k": "v"}, message_id="m1")
    bus.nack(pull_one(bus, "collector"), reason="warehouse down")
    bus.publish("month.closed", b"not json", {}, message_id="m2")
    bus.park(pull_one(bus, "collector"), reason="malformed event: not JSON")
    assert pubsub_server.state.backlog(bus.subscription_path("collector")) == 0  # both acked
    nacked, parked = dead_letter_messages(bus)
    assert nacked.data == b"x"
    assert (nacked.attributes["reason"], nacked.attributes["subscription"]) == (
        "warehouse down",
        "collector",
    )
    assert nacked.attributes["k"] == "v"
    assert parked.attributes["reason"] == "malformed event: not JSON"
    assert parked.attributes["cashmatch_original_id"] == "m2"


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


def test_nack_backoff_is_the_lease(make_bus: MakeBus) -> None:
    # Waits on the redelivery itself, not a clock: whenever it comes, not before the backoff.
    bus = make_bus(retry=RetryPolicy(min_backoff_s=2, max_backoff_s=2))
    bus.publish("month.closed", b"x", {}, message_id="m1")
    bus.nack(pull_one(bus, "collector"), reason="later")
    nacked_at = time.monotonic()
    deadline = nacked_at + 60
    while not (again := bus.pull("collector")):
        assert time.monotonic() < deadline, "the nacked message never came back"
        time.sleep(0.05)
    assert time.monotonic() - nacked_at >= 2.0 - 0.05  # Pub/Sub deadlines are whole seconds
    assert [d.attempt for d in again] == [2]


def test_dead_letters_published_by_the_push_entry_point_are_listed(bus: PubSubEventBus) -> None:
    # cashmatch/entrypoints/cloud_event.py parks a pushed event by publishing it to the dead-letter topic.
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


def test_a_redelivery_of_a_settled_message_is_acked_and_skipped(
    bus: PubSubEventBus, pubsub_server
) -> None:
    bus.publish("month.closed", b"x", {}, message_id="m1")
    delivery = pull_one(bus, "collector")
    end_lease(bus, delivery)  # Pub/Sub will deliver it again: the ack below comes too late
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
