"""Commands about the data and the whole picture: synthesize a warehouse, the rows a month set
aside, the status of months, models and deployment, and the demo that runs it all."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cashmatch.entrypoints.cli import output, params, session, views

PANEL = "Data, status and the demo"
commands = typer.Typer()


@commands.command(rich_help_panel=PANEL)
def synth(
    out: Annotated[Path, typer.Option(help="DuckDB file to write")],
    months: Annotated[int, typer.Option(min=1, max=120)] = 8,
    start: Annotated[
        str, typer.Option(help="first month, YYYY-MM", callback=params.month)
    ] = "2025-01",
    scale: Annotated[float, typer.Option(min=0.01, help="multiplies the volume")] = 1.0,
    seed: int = 7,
    profile: Annotated[str, typer.Option(help="default | messy")] = "default",
) -> None:
    """Write a finance-system warehouse with realistic, messy, labelled months."""
    from cashmatch.synth import SynthConfig, generate, write_warehouse

    try:
        config = SynthConfig(months=months, start=start, seed=seed, scale=scale, profile=profile)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    with output.console.status(f"synthesizing {months} months ({profile}, scale {scale})…"):
        data = generate(config)
        write_warehouse(data, out)
    per_month = data.transfers.groupby(data.transfers["booking_date"].dt.strftime("%Y-%m")).size()
    output.table(
        f"wrote {out}",
        ["month", "transfers"],
        [[m, int(n)] for m, n in per_month.items()],
    )
    output.say(
        f"{len(data.invoices)} invoices, {len(data.transfers)} transfers, "
        f"{len(data.matches)} labels"
    )


@commands.command(rich_help_panel=PANEL)
def quarantine(
    month: Annotated[str, typer.Option(help="YYYY-MM", callback=params.month)],
    as_json: params.JsonFlag = False,
) -> None:
    """Rows the collector set aside for a month, by key, with the reason.

    --json: a list of one object per row set aside: {month, table, key, reason}
    """
    from cashmatch.ports import BlobNotFound

    try:
        rows = session.ports().datasets.read_quarantine(month)
    except BlobNotFound:
        raise output.UserError(f"month {month} has not been collected") from None
    shown = views.quarantined(rows, month)
    if as_json:
        output.as_json(shown)
        return
    output.table(
        f"quarantine of {month}: {len(shown)} rows",
        ["table", "key", "reason"],
        [[q["table"], q["key"], q["reason"]] for q in shown],
    )


@commands.command(rich_help_panel=PANEL)
def status(
    as_json: params.JsonFlag = False,
    events: Annotated[int, typer.Option(min=0, help="how many recent events")] = 10,
) -> None:
    """Months, datasets, models and verdicts, the champion's lineage, the deployment, events.

    --json: one object with a field per section the tables show:
    months: a list of {month, train_transfers, quarantined, dataset_version,
    training_months}
    test_set: {version, months, rows}, or null
    models: a list as `models --json` gives it
    champion: {version, dataset_version, dataset_uri, training_months,
    trained_because_of, approval}, or null
    champion_history: a list of {version, previous, at, by, reason}
    deployed: {version, endpoint, history (a list as champion_history)}
    events: a list as `events --json` gives it
    dead_letters: how many there are
    """
    from cashmatch.entrypoints.cli.status import gather, show

    current = gather(session.ports(), events=events)
    if as_json:
        output.as_json(current)
    else:
        show(current)


@commands.command(rich_help_panel=PANEL)
def demo(
    workspace: Annotated[
        Path,
        typer.Option(help="the demo's folder: made new, or an earlier demo's, which is replaced"),
    ] = Path(".demo"),
    months: Annotated[int, typer.Option(min=3, max=36)] = 8,
    backfill: Annotated[int, typer.Option(min=1, help="months the first close collects")] = 3,
    scale: float = 1.0,
    profile: Annotated[
        str, typer.Option(help="messy (default here: the gates have something to decide) | default")
    ] = "messy",
    serving: Annotated[str, typer.Option(help="ray | none")] = "ray",
    scenario: Annotated[
        str,
        typer.Option(
            help="none | shift: subscription customers pay the newest equal invoice first from "
            "the second-to-last month (the breach, the guardrail, the month after)"
        ),
    ] = "none",
) -> None:
    """Synthesize months, close them one by one, and show the chain at work."""
    from cashmatch.entrypoints.cli.demo import run_demo

    run_demo(
        workspace,
        months=months,
        backfill=backfill,
        scale=scale,
        profile=profile,
        serving=serving,
        scenario=scenario,
    )
