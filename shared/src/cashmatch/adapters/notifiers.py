"""Where alerts go: the log, a Slack incoming webhook, or both.

A notifier never raises, because a broken webhook must not fail (and so retry) the handler
that had something to report; it answers whether the alert got through instead, so the alerter
service, whose one job is the alert, can have the bus try again. The webhook URL is a secret: it
is read from the environment only, and only its scheme and host ever reach a log line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, get_args
from urllib.parse import urlsplit

from cashmatch.domain.alerts import Alert, AlertKind
from cashmatch.ports import Notifier

log = logging.getLogger(__name__)

# Not a CASHMATCH_ variable on purpose: the settings object rejects unknown CASHMATCH_ names
# and is logged and dumped freely, and a secret should be in neither.
WEBHOOK_ENV = "SLACK_WEBHOOK_URL"

_EMOJI: dict[AlertKind, str] = {
    "failure": ":x:",
    "dead_letter": ":skull:",
    "rejection": ":no_entry:",
    "deployment": ":rocket:",
    "drift": ":warning:",
    "breach": ":rotating_light:",
}
_LEVEL: dict[AlertKind, int] = {
    "failure": logging.ERROR,
    "dead_letter": logging.ERROR,
    "rejection": logging.WARNING,
    "deployment": logging.INFO,
    "drift": logging.WARNING,
    "breach": logging.ERROR,
}
# A new kind of alert without its emoji or level failed every delivery of it (KeyError).
assert set(_EMOJI) == set(_LEVEL) == set(get_args(AlertKind)), "every alert kind is formatted"
# Slack's limits: header text 150 characters, section text 3000, at most 10 fields.
_HEADER_MAX, _TEXT_MAX, _FIELDS_MAX = 150, 3000, 10


def redact(url: str) -> str:
    """Only the scheme and host of a URL, e.g. https://hooks.slack.com/…"""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return "<webhook>"
    return f"{parts.scheme}://{parts.hostname}/…"


class ConsoleNotifier:
    """Alerts as log records (errors for failures and dead letters, info for deployments)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or log

    def notify(self, alert: Alert) -> bool:
        """Log the alert on one line."""
        try:
            parts = [f"ALERT {alert.kind}: {alert.title}"]
            if alert.month:
                parts.append(f"month={alert.month}")
            parts += [f"{role}={version}" for role, version in alert.versions.items()]
            if alert.link:
                parts.append(f"link={alert.link}")
            parts += alert.details
            self.logger.log(_LEVEL[alert.kind], " | ".join(parts))
            return True
        except Exception:  # a formatting bug must not break the caller either
            log.exception("could not log an alert")
            return False


def _mrkdwn(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_blocks(alert: Alert) -> list[dict[str, Any]]:
    """Block Kit blocks of an alert: a header, the facts as fields, details, the link."""
    header = f"{_EMOJI[alert.kind]} {alert.title}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(header, _HEADER_MAX)}}
    ]
    fields = [f"*Kind*\n{alert.kind.replace('_', ' ')}"]
    if alert.month:
        fields.append(f"*Month*\n{alert.month}")
    fields += [f"*{_mrkdwn(role)}*\n`{_mrkdwn(v)}`" for role, v in alert.versions.items()]
    blocks.append(
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": _cut(f, 2000)} for f in fields[:_FIELDS_MAX]],
        }
    )
    if alert.details:
        text = "\n".join(f"• {_mrkdwn(line)}" for line in alert.details)
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, _TEXT_MAX)}}
        )
    if alert.link:
        link = alert.link
        # Slack renders only web links as links; a file:// or gs:// URI is shown as code.
        shown = (
            f"<{link}|open>" if link.startswith(("http://", "https://")) else f"`{_mrkdwn(link)}`"
        )
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": shown}]})
    return blocks


class SlackNotifier:
    """Posts alerts to a Slack incoming webhook with slack-sdk's WebhookClient."""

    def __init__(self, webhook_url: str, *, timeout: int = 5) -> None:
        if not webhook_url.startswith(("https://", "http://")):
            raise ValueError(f"{WEBHOOK_ENV} must be an http(s) URL, got {redact(webhook_url)}")
        from slack_sdk.webhook import WebhookClient

        self._target = redact(webhook_url)
        # slack-sdk logs the full URL at debug and info level; give it a logger of its own that
        # only passes critical records (it emits none), and report outcomes here, redacted.
        quiet = logging.Logger("cashmatch.alerts.slack-sdk", logging.CRITICAL)
        self._client = WebhookClient(webhook_url, timeout=timeout, logger=quiet)

    def __repr__(self) -> str:
        return f"SlackNotifier({self._target})"

    def notify(self, alert: Alert) -> bool:
        """Post the alert; log a warning (never raise) when the webhook refuses or is down."""
        try:
            response = self._client.send(
                text=_cut(f"{alert.kind}: {alert.title}", _TEXT_MAX),
                blocks=slack_blocks(alert),
            )
        except Exception as exc:
            log.warning(
                "slack alert %r not sent to %s: %s", alert.title, self._target, type(exc).__name__
            )
            return False
        if response.status_code >= 300:
            log.warning(
                "slack alert %r refused by %s: HTTP %s %s",
                alert.title,
                self._target,
                response.status_code,
                _cut(str(response.body), 200),
            )
            return False
        return True


class FanOutNotifier:
    """Sends every alert to each of several notifiers."""

    def __init__(self, notifiers: Sequence[Notifier]) -> None:
        self.notifiers = list(notifiers)

    def notify(self, alert: Alert) -> bool:
        """Hand the alert to every notifier; one failing does not stop the others. True when
        every one delivered it."""
        delivered = True
        for notifier in self.notifiers:
            try:
                delivered &= notifier.notify(alert) is True
            except Exception:
                log.exception("notifier %r failed", notifier)
                delivered = False
        return delivered


def notifier_from_env(environ: Mapping[str, str] | None = None) -> Notifier:
    """The log always; Slack too when SLACK_WEBHOOK_URL is set (and valid)."""
    env = os.environ if environ is None else environ
    url = env.get(WEBHOOK_ENV, "").strip()
    console = ConsoleNotifier()
    if not url:
        return console
    try:
        return FanOutNotifier([console, SlackNotifier(url)])
    except ValueError as exc:
        log.warning("Slack alerts disabled: %s", exc)
        return console
