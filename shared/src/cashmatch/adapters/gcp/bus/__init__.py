"""The EventBus port on Pub/Sub: `PubSubEventBus`, with a journal in a BlobStore for what
Pub/Sub does not keep (deduplication, outcomes, history)."""

from cashmatch.adapters.gcp.bus.event_bus import PubSubEventBus

__all__ = ["PubSubEventBus"]
