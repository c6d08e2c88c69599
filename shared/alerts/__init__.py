"""Alerts: tell a person about failures, dead letters, rejections, deployments and drift.

Public face: `Alert`, the `Notifier` port with `ConsoleNotifier`, `SlackNotifier` and
`FanOutNotifier`, `notifier_from_env`, and the mappings `alert_for_event`,
`alert_for_dead_letter` and `alert_for_failure`.
"""

from shared.alerts.mapping import alert_for_dead_letter, alert_for_event, alert_for_failure
from shared.alerts.model import Alert, AlertKind
from shared.alerts.notifiers import (
    WEBHOOK_ENV,
    ConsoleNotifier,
    FanOutNotifier,
    Notifier,
    SlackNotifier,
    notifier_from_env,
    redact,
    slack_blocks,
)

__all__ = [
    "WEBHOOK_ENV",
    "Alert",
    "AlertKind",
    "ConsoleNotifier",
    "FanOutNotifier",
    "Notifier",
    "SlackNotifier",
    "alert_for_dead_letter",
    "alert_for_event",
    "alert_for_failure",
    "notifier_from_env",
    "redact",
    "slack_blocks",
]
