"""Start the console: check where it may bind, make the workspace token, print the URL, serve.

`cashmatch ui` calls `serve` on a laptop; services/console/main.py builds the app with
`build_app` for Cloud Run (console_auth=iap, bound where Cloud Run says).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from cashmatch.bootstrap import bootstrap
from cashmatch.entrypoints.console.access import Access, check_bind, workspace_token
from cashmatch.entrypoints.console.app import create_app
from cashmatch.settings import Settings


def build_app(settings: Settings) -> FastAPI:
    """The console over the configured stack (its ports are built at the first request)."""
    return create_app(lambda: bootstrap(settings), Access(settings))


def console_url(settings: Settings, host: str | None = None, port: int | None = None) -> str:
    """The URL that opens the console with the right to act: it carries the workspace token
    (made now if the workspace has none)."""
    shown = host or settings.console_host
    if ":" in shown:  # an IPv6 address
        shown = f"[{shown}]"
    url = f"http://{shown}:{port or settings.console_port}/"
    if settings.console_auth == "token":
        url += f"?token={workspace_token(settings.workspace)}"
    return url


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    allow_remote: bool,
    announce: Callable[[str], None],
) -> None:
    """Serve the console until Ctrl-C, after `announce`-ing the URL to open; SettingsError
    before anything starts (or is made) for a host that is not loopback without
    `allow_remote`."""
    import uvicorn

    check_bind(host, allow_remote=allow_remote or settings.console_allow_remote)
    app = build_app(settings)
    announce(f"cashmatch console: {console_url(settings, host, port)}")
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
