"""Publish `month.closed` for a month, as the scheduled close does when no finance system does.

    python -m cashmatch.entrypoints.close_month [--month YYYY-MM]   (default: the previous month)

Runs in the collector's image (the Terraform's Cloud Run job behind Cloud Scheduler), so it
needs nothing the collector's member does not install: no CLI. The event's id is derived from
the month, so a job that is retried, or a second run for the same month, publishes it once.
Exit status 0 when published or already there, 2 for a bad month or settings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys

from cashmatch.bootstrap import bootstrap
from cashmatch.domain.events import MalformedEvent, MonthClosed, derived_id, make_event
from cashmatch.service_layer.publishing import publish_event
from cashmatch.settings import SettingsError, load_settings

log = logging.getLogger(__name__)
SOURCE = "/schedule/close-month"


def previous_month(today: dt.date) -> str:
    """The month before the one `today` is in, YYYY-MM."""
    return (today.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="publish month.closed for a month")
    parser.add_argument("--month", help="YYYY-MM (default: the previous month, UTC)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    month = args.month or previous_month(dt.datetime.now(dt.UTC).date())
    try:
        payload = MonthClosed(month=month)
        ports = bootstrap(load_settings())
    except (ValueError, MalformedEvent, SettingsError) as exc:
        log.error("not published: %s", exc)
        return 2
    event = make_event(
        payload, source=SOURCE, event_id=derived_id(f"close/{month}", "month.closed")
    )
    if publish_event(ports.bus, event):
        log.info("published month.closed for %s: id %s", month, event.id)
    else:
        log.info("month.closed for %s was already published: id %s", month, event.id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
