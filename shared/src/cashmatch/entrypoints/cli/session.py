"""What one `cashmatch` command runs with: the global options of the command line, and the
settings and ports they make. Commands call `session.ports()` (tests put a fake in its place)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cashmatch.bootstrap import bootstrap
from cashmatch.service_layer.context import Ports
from cashmatch.settings import Settings, load_settings

_overrides: dict[str, Any] = {}
show_tracebacks = False


def configure(*, workspace: Path | None, warehouse: str | None, verbose: bool) -> None:
    """Take the global options (--workspace, --warehouse, --verbose) of this command line."""
    global show_tracebacks
    show_tracebacks = verbose
    _overrides.clear()
    if workspace is not None:
        _overrides["workspace"] = workspace
    if warehouse is not None:
        _overrides["warehouse"] = warehouse


def settings() -> Settings:
    """The process's settings, with the command line's overrides."""
    return load_settings(**_overrides)


def ports() -> Ports:
    """The composition root for this command."""
    return bootstrap(settings())
