"""`cashmatch ui`: the web console on this machine."""

from __future__ import annotations

from typing import Annotated

import typer

from cashmatch.entrypoints.cli import output, session

PANEL = "The console"
commands = typer.Typer()


@commands.command(rich_help_panel=PANEL)
def ui(
    port: Annotated[int | None, typer.Option(help="CASHMATCH_CONSOLE_PORT (8765)")] = None,
    host: Annotated[
        str | None, typer.Option(help="CASHMATCH_CONSOLE_HOST (127.0.0.1: loopback only)")
    ] = None,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="bind an address other than loopback")
    ] = False,
) -> None:
    """Serve the web console on 127.0.0.1 (Ctrl-C stops it).

    It prints a URL with this workspace's token (kept in <workspace>/console/token, mode
    0600): opened once, the token becomes a cookie, and the buttons (redrive, republish,
    approve, reject) work; without it the console only reads.
    """
    from cashmatch.entrypoints.console.server import serve

    settings = session.settings()
    serve(
        settings,
        host=host or settings.console_host,
        port=port or settings.console_port,
        allow_remote=allow_remote,
        announce=lambda said: output.say(said + "  (Ctrl-C stops it)", style="bold"),
    )
