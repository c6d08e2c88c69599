"""An in-memory Pub/Sub gRPC server that the real google-cloud-pubsub clients talk to.

There is no installable Pub/Sub emulator for Python 3.11 (the official one ships with the gcloud
SDK), so tests run this instead, on 127.0.0.1, in process; clients find it through
PUBSUB_EMULATOR_HOST as they would find the official emulator. The service stubs were generated
from the proto google-cloud-pubsub ships (`pubsub_v1_pb2_grpc.py`) and (de)serialize with the
library's own message classes.

What it does, as Pub/Sub does: topics and subscriptions (create, get, list, delete), publish
with attributes and server-assigned ids and publish times, fan-out to every subscription of the
topic that existed at publish time, synchronous pull with leases (ack deadline), acknowledge,
modify-ack-deadline (0 = redeliver now), redelivery after an expired lease, `delivery_attempt`
when the subscription has a dead-letter policy. What it does not: streaming pull, push
delivery, filters, ordering keys, forwarding to the dead-letter topic, snapshots and seek,
exactly-once delivery, retention limits. A pull with nothing to deliver waits briefly (as the
service waits a bounded time) and answers empty.
"""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import empty_pb2, timestamp_pb2
from google.pubsub_v1 import types

from tests.fakes import pubsub_v1_pb2_grpc as stubs

_MAX_MESSAGE_BYTES = 20 * 1024 * 1024  # the service takes up to 10 MB per publish request
_MIN_ACK_DEADLINE_S, _MAX_ACK_DEADLINE_S = 10, 600

Topic = types.Topic.pb()
Subscription = types.Subscription.pb()
PubsubMessage = types.PubsubMessage.pb()
ReceivedMessage = types.ReceivedMessage.pb()
PublishResponse = types.PublishResponse.pb()
PullResponse = types.PullResponse.pb()
ListTopicsResponse = types.ListTopicsResponse.pb()
ListSubscriptionsResponse = types.ListSubscriptionsResponse.pb()
ListTopicSubscriptionsResponse = types.ListTopicSubscriptionsResponse.pb()


@dataclass
class _Entry:
    """One message waiting in one subscription."""

    message: Any  # PubsubMessage
    available_at: float = 0.0  # monotonic time; a leased entry becomes available when it expires
    ack_id: str | None = None
    attempts: int = 0


@dataclass
class _Subscription:
    proto: Any  # Subscription
    entries: list[_Entry] = field(default_factory=list)


class FakePubSub(stubs.PublisherServicer, stubs.SubscriberServicer):
    """The state and the two services; every method holds one lock, so they are atomic."""

    def __init__(self, *, empty_pull_wait_s: float = 0.02) -> None:
        self.empty_pull_wait_s = empty_pull_wait_s
        self._topics: dict[str, Any] = {}
        self._subscriptions: dict[str, _Subscription] = {}
        self._ids = itertools.count(1)
        self._changed = threading.Condition()

    # -- Publisher -----------------------------------------------------------------------------

    def CreateTopic(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Create a topic; ALREADY_EXISTS if it does."""
        with self._changed:
            if request.name in self._topics:
                context.abort(
                    grpc.StatusCode.ALREADY_EXISTS, f"Topic already exists: {request.name}"
                )
            topic = Topic()
            topic.CopyFrom(request)
            self._topics[request.name] = topic
            return topic

    def GetTopic(self, request: Any, context: grpc.ServicerContext) -> Any:
        """A topic; NOT_FOUND if absent."""
        with self._changed:
            return self._topic(request.topic, context)

    def ListTopics(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Every topic of the project (one page)."""
        prefix = f"{request.project}/topics/"
        with self._changed:
            found = [t for name, t in sorted(self._topics.items()) if name.startswith(prefix)]
        return ListTopicsResponse(topics=found)

    def ListTopicSubscriptions(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Names of the subscriptions attached to a topic."""
        with self._changed:
            self._topic(request.topic, context)
            names = [
                n for n, s in sorted(self._subscriptions.items()) if s.proto.topic == request.topic
            ]
        return ListTopicSubscriptionsResponse(subscriptions=names)

    def DeleteTopic(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Delete a topic; its subscriptions stay, detached, as on Pub/Sub."""
        with self._changed:
            self._topic(request.topic, context)
            del self._topics[request.topic]
            for sub in self._subscriptions.values():
                if sub.proto.topic == request.topic:
                    sub.proto.topic = "_deleted-topic_"
        return empty_pb2.Empty()

    def Publish(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Store each message in every subscription of the topic; answer the new ids."""
        with self._changed:
            self._topic(request.topic, context)
            if not request.messages:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no messages in the request")
            now = timestamp_pb2.Timestamp()
            now.FromDatetime(dt.datetime.now(dt.UTC))
            ids = []
            for incoming in request.messages:
                if not incoming.data and not incoming.attributes:
                    context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "a message needs data or at least one attribute",
                    )
                message = PubsubMessage()
                message.CopyFrom(incoming)
                message.message_id = str(next(self._ids))
                message.publish_time.CopyFrom(now)
                ids.append(message.message_id)
                for sub in self._subscriptions.values():
                    if sub.proto.topic == request.topic:
                        sub.entries.append(_Entry(message))
            self._changed.notify_all()
        return PublishResponse(message_ids=ids)

    # -- Subscriber ----------------------------------------------------------------------------

    def CreateSubscription(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Attach a subscription to a topic; it receives what is published from now on."""
        with self._changed:
            if request.name in self._subscriptions:
                context.abort(
                    grpc.StatusCode.ALREADY_EXISTS, f"Subscription already exists: {request.name}"
                )
            self._topic(request.topic, context)
            proto = Subscription()
            proto.CopyFrom(request)
            if not proto.ack_deadline_seconds:
                proto.ack_deadline_seconds = _MIN_ACK_DEADLINE_S
            proto.ack_deadline_seconds = min(
                max(proto.ack_deadline_seconds, _MIN_ACK_DEADLINE_S), _MAX_ACK_DEADLINE_S
            )
            self._subscriptions[request.name] = _Subscription(proto)
            return proto

    def GetSubscription(self, request: Any, context: grpc.ServicerContext) -> Any:
        """A subscription; NOT_FOUND if absent."""
        with self._changed:
            return self._subscription(request.subscription, context).proto

    def ListSubscriptions(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Every subscription of the project (one page)."""
        prefix = f"{request.project}/subscriptions/"
        with self._changed:
            found = [
                s.proto for n, s in sorted(self._subscriptions.items()) if n.startswith(prefix)
            ]
        return ListSubscriptionsResponse(subscriptions=found)

    def DeleteSubscription(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Delete a subscription and what waits in it."""
        with self._changed:
            self._subscription(request.subscription, context)
            del self._subscriptions[request.subscription]
        return empty_pb2.Empty()

    def Pull(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Lease up to max_messages available messages; wait briefly when there are none."""
        if request.max_messages < 1:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "max_messages must be positive")
        remaining = context.time_remaining()
        wait = (
            self.empty_pull_wait_s if remaining is None else min(self.empty_pull_wait_s, remaining)
        )
        give_up = time.monotonic() + max(wait, 0.0)
        with self._changed:
            while True:
                sub = self._subscription(request.subscription, context)
                leased = self._lease(sub, request.max_messages)
                left = give_up - time.monotonic()
                if leased or left <= 0:
                    return PullResponse(received_messages=leased)
                self._changed.wait(left)

    def _lease(self, sub: _Subscription, limit: int) -> list[Any]:
        now = time.monotonic()
        leased: list[Any] = []
        counts_attempts = sub.proto.HasField("dead_letter_policy")
        for entry in sub.entries:
            if len(leased) == limit:
                break
            if entry.available_at > now:
                continue
            entry.attempts += 1
            entry.ack_id = f"{sub.proto.name}#{secrets.token_hex(8)}"
            entry.available_at = now + sub.proto.ack_deadline_seconds
            leased.append(
                ReceivedMessage(
                    ack_id=entry.ack_id,
                    message=entry.message,
                    delivery_attempt=entry.attempts if counts_attempts else 0,
                )
            )
        return leased

    def Acknowledge(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Remove the messages of current ack ids; stale or unknown ids are ignored, as on Pub/Sub."""
        with self._changed:
            sub = self._subscription(request.subscription, context)
            done = set(request.ack_ids)
            sub.entries = [e for e in sub.entries if e.ack_id not in done]
        return empty_pb2.Empty()

    def ModifyAckDeadline(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Move the lease end of current ack ids; 0 makes the message available at once."""
        if not 0 <= request.ack_deadline_seconds <= _MAX_ACK_DEADLINE_S:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "ack deadline out of range")
        with self._changed:
            sub = self._subscription(request.subscription, context)
            wanted = set(request.ack_ids)
            now = time.monotonic()
            for entry in sub.entries:
                if entry.ack_id in wanted:
                    entry.available_at = now + request.ack_deadline_seconds
                    if request.ack_deadline_seconds == 0:
                        entry.ack_id = None  # a nacked handle cannot ack any more
            self._changed.notify_all()
        return empty_pb2.Empty()

    # -- helpers -------------------------------------------------------------------------------

    def _topic(self, name: str, context: grpc.ServicerContext) -> Any:
        topic = self._topics.get(name)
        if topic is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Topic not found: {name}")
        return topic

    def _subscription(self, name: str, context: grpc.ServicerContext) -> _Subscription:
        sub = self._subscriptions.get(name)
        if sub is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Subscription does not exist: {name}")
        assert sub is not None
        return sub

    def backlog(self, subscription: str) -> int:
        """Messages not yet acknowledged in a subscription (for tests)."""
        with self._changed:
            return len(self._subscriptions[subscription].entries)


@dataclass
class PubSubServer:
    """A running fake: `host` is what PUBSUB_EMULATOR_HOST should be."""

    host: str
    state: FakePubSub
    server: grpc.Server

    def stop(self) -> None:
        """Stop serving at once."""
        self.server.stop(grace=None).wait(5)


def start_pubsub_server(*, empty_pull_wait_s: float = 0.02) -> PubSubServer:
    """Serve a fresh fake on 127.0.0.1 at a free port."""
    state = FakePubSub(empty_pull_wait_s=empty_pull_wait_s)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="fake-pubsub"),
        options=[
            ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
        ],
    )
    stubs.add_PublisherServicer_to_server(state, server)
    stubs.add_SubscriberServicer_to_server(state, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return PubSubServer(host=f"127.0.0.1:{port}", state=state, server=server)


def running_pubsub_server() -> Iterator[PubSubServer]:
    """Generator for a pytest fixture: start, yield, stop."""
    server = start_pubsub_server()
    try:
        yield server
    finally:
        server.stop()


def end_lease(bus: Any, delivery: Any) -> None:
    """What a subscriber that dies does to a PubSubEventBus delivery, without waiting out Pub/Sub's
    10 s minimum lease: an ack deadline of 0 makes the message due again now."""
    bus.subscriber.modify_ack_deadline(
        request={
            "subscription": bus.subscription_path(delivery.subscription),
            "ack_ids": [delivery.ack_id],
            "ack_deadline_seconds": 0,
        }
    )
