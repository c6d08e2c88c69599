"""Every service's handler by subscriber: the table the CLI's `run` and `worker` drive.

Only the CLI (and tests) import this; a service's own entry point (services/<name>/main.py)
imports its handler alone, so a broken import in one service cannot take the others down.
"""

from __future__ import annotations

from collections.abc import Iterable

from cashmatch.domain.subscriptions import SUBSCRIPTIONS
from cashmatch.service_layer.dispatch import Handler
from cashmatch.service_layer.handlers.alerter import alert
from cashmatch.service_layer.handlers.collector import collect
from cashmatch.service_layer.handlers.deployer import deploy
from cashmatch.service_layer.handlers.estimator import estimate_after_rollout
from cashmatch.service_layer.handlers.evaluator import evaluate
from cashmatch.service_layer.handlers.guardrail import guard
from cashmatch.service_layer.handlers.monitor import monitor
from cashmatch.service_layer.handlers.trainer import train

HANDLERS: dict[str, Handler] = {
    "collector": collect,
    "trainer": train,
    "evaluator": evaluate,
    "deployer": deploy,
    "monitor": monitor,
    "alert-rejected": alert,
    "alert-deployed": alert,
    "alert-drift": alert,
    "guardrail": guard,
    "alert-breached": alert,
    "estimator": estimate_after_rollout,
}
assert set(HANDLERS) == set(SUBSCRIPTIONS), "every subscriber has a handler"


def handlers(names: Iterable[str] | None = None) -> dict[str, Handler]:
    """The handlers of `names` (every subscriber when None), in the table's order."""
    wanted = set(HANDLERS if names is None else names)
    unknown = wanted - set(HANDLERS)
    if unknown:
        raise KeyError(f"no such service: {', '.join(sorted(unknown))}")
    return {name: h for name, h in HANDLERS.items() if name in wanted}
