"""`cashmatch`: what the finance system and the engineers type. Each command calls the same
handlers and ports the services use; the CLI only parses arguments and prints."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from google.auth.exceptions import DefaultCredentialsError

from cashmatch.entrypoints.cli import (
    bus_commands,
    data_commands,
    model_commands,
    output,
    performance_commands,
    session,
    ui_command,
)
from cashmatch.ports import WarehouseSchemaError
from cashmatch.settings import SettingsError

# typer's click (a copy inside typer since 0.2x, click itself before): the base of its errors.
_ClickException: type[Exception] = sys.modules[typer.BadParameter.__module__].ClickException

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
for group in (data_commands, bus_commands, model_commands, performance_commands, ui_command):
    app.add_typer(group.commands)


@app.callback()
def _options(
    workspace: Annotated[
        Path | None, typer.Option(help="workspace folder (CASHMATCH_WORKSPACE)")
    ] = None,
    warehouse: Annotated[
        str | None, typer.Option(help="warehouse DuckDB file (CASHMATCH_WAREHOUSE)")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="log what happens; tracebacks on errors")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    session.configure(workspace=workspace, warehouse=warehouse, verbose=verbose)


# What a person asked for or pointed the command at is wrong: settings, a warehouse without the
# contract's tables, a path that is missing or of the wrong kind, no gcp credentials. One clear
# line and exit 2 (--verbose shows the traceback). Anything else is a bug or an outage and keeps
# its traceback and exit 1: a broad ValueError or KeyError here would hide those as "usage".
_USER_ERRORS: tuple[type[Exception], ...] = (
    output.UserError,
    SettingsError,
    WarehouseSchemaError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    DefaultCredentialsError,  # google-auth's message says how to set credentials up
)


def _usage_error(exc: Any) -> int:
    """A command line click refused (bad option, value or argument), told the CLI's way: the
    usage and one `error:` line on stderr, never wrapped off a terminal. Returns the exit code."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # the help is printed already
        return exc.exit_code
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        output.hint(ctx.get_usage())
        output.hint(f"Try '{ctx.command_path} --help' for help.")
    output.fail(exc.format_message())
    return exc.exit_code


def main() -> None:
    """Entry point: errors in the input become one clear line, not a traceback."""
    try:
        code = app(standalone_mode=False)
    except _ClickException as exc:
        code = _usage_error(exc)
    except typer.Abort:
        output.fail("aborted")
        code = 1
    except _USER_ERRORS as exc:
        if session.show_tracebacks:
            raise
        said = str(exc)
        if not isinstance(exc, output.UserError):
            said += f" ({type(exc).__name__}; --verbose shows where)"
        output.fail(said)
        code = 2
    sys.exit(code if isinstance(code, int) else 0)
