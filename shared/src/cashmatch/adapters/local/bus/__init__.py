"""The local stack's EventBus: `SqliteEventBus`, a durable, at-least-once stand-in for Pub/Sub
in one SQLite file of the workspace."""

from cashmatch.adapters.local.bus.event_bus import SqliteEventBus

__all__ = ["SqliteEventBus"]
