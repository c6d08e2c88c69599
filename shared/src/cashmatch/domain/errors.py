"""Errors that decide what the bus does with an event: retry it, or park it for a person."""

from __future__ import annotations


class PermanentError(Exception):
    """Retrying cannot help (bad input, a month with no data): park the event with this reason."""
