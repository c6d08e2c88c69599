"""The event topology: which subscriber listens to which topic (Pub/Sub push subscriptions).

A subscriber is one service's view of one topic; the alerter has four, the deployer and the
monitor two.
Entry points, the buses and the infra checks all read this one table.
"""

from __future__ import annotations

# Which service listens to which topic; on Pub/Sub these are the push subscriptions.
SUBSCRIPTIONS: dict[str, str] = {
    "collector": "month.closed",
    "trainer": "dataset.ready",
    "monitor": "dataset.ready",
    "evaluator": "model.trained",
    "deployer": "evaluation.passed",
    # The deployer's second subscription: it acts on a broken promise (threshold or rollback).
    "guardrail": "performance.breached",
    # The monitor's service's second subscription: the open month's estimate at each roll-out
    # (it loads the model, which the deployer's image does not carry).
    "estimator": "model.deployed",
    # The alerter listens to the outcomes a person wants to hear about, one subscription each.
    "alert-rejected": "evaluation.rejected",
    "alert-deployed": "model.deployed",
    "alert-drift": "drift.detected",
    "alert-breached": "performance.breached",
}
DEAD_LETTER_TOPIC = "dead-letter"
