"""How a journalled delivery changes on pull, ack/nack/park and redrive: the changes the
journal applies by compare-and-swap."""

from __future__ import annotations

import logging
from typing import Any

from cashmatch.adapters.gcp.bus.journal import TERMINAL_STATES, append_history
from cashmatch.ports import Delivery

logger = logging.getLogger(__name__)


class Lease:
    """A pull's change: lease the delivery for one more attempt, or bury it when the lease of
    its last allowed attempt expired. Keeps no record of a delivery already settled."""

    def __init__(self, max_attempts: int, now: str) -> None:
        self.max_attempts = max_attempts
        self.now = now
        self.buried: str | None = None  # why it died instead, when it did

    def __call__(self, current: dict[str, Any]) -> dict[str, Any] | None:
        # Called again with a fresher record when a compare-and-swap loses: forget the last try.
        self.buried = None
        if current["state"] in TERMINAL_STATES:
            return None
        attempts = current["attempts"]
        if current["state"] == "leased" and attempts >= self.max_attempts:
            # The last allowed attempt's lease expired: never hand it out again.
            detail = f"lease expired after {attempts} attempts (subscriber died?)"
            append_history(current, attempts, "dead", detail, self.now)
            current.update(state="dead", detail=detail, updated_at=self.now)
            self.buried = detail
            return current
        if current["state"] == "leased":
            detail = f"lease of attempt {attempts} expired (subscriber died?)"
            append_history(current, attempts, "lease expired", detail, self.now)
            current["detail"] = detail
        current.update(state="leased", attempts=attempts + 1, updated_at=self.now)
        return current


class Settle:
    """An ack's, nack's or park's change: record the outcome, if `delivery` still holds the
    lease it was pulled with (`held` says whether it did)."""

    def __init__(
        self, delivery: Delivery, verb: str, state: str, outcome: str, detail: str, now: str
    ) -> None:
        self.delivery = delivery
        self.verb = verb
        self.state = state
        self.outcome = outcome
        self.detail = detail
        self.now = now
        self.held = False

    def __call__(self, current: dict[str, Any]) -> dict[str, Any] | None:
        delivery = self.delivery
        if current["state"] != "leased" or current["attempts"] != delivery.attempt:
            self.held = False
            logger.warning(
                "%s of %s to %s (attempt %d) ignored: this handle no longer holds the lease;"
                " the delivery is now %s at attempt %d",
                self.verb,
                delivery.message_id,
                delivery.subscription,
                delivery.attempt,
                current["state"],
                current["attempts"],
            )
            return None
        self.held = True
        attempts = current["attempts"]
        append_history(current, attempts, self.outcome, self.detail, self.now)
        current.update(state=self.state, detail=self.detail, updated_at=self.now)
        return current


class Revive:
    """A redrive's change: a dead delivery becomes pending again with its attempts reset."""

    def __init__(self, detail: str, now: str) -> None:
        self.detail = detail
        self.now = now

    def __call__(self, current: dict[str, Any]) -> dict[str, Any] | None:
        if current["state"] != "dead":
            return None
        append_history(current, current["attempts"], "redriven", self.detail, self.now)
        current.update(state="pending", attempts=0, detail="redriven", updated_at=self.now)
        return current


def redrive_failed(current: dict[str, Any]) -> dict[str, Any]:
    """Undo a revive whose message was not sent, so a later redrive finds it dead again."""
    return {**current, "state": "dead", "detail": "redrive failed"}
