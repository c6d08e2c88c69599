"""Commands about models: the registry's versions, batch matching with one, a person's approval
or rejection of a roll-out, and the local matcher on Ray Serve (serve, roll back, stop)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cashmatch.entrypoints.cli import output, params, session, views
from cashmatch.entrypoints.cli.engines import Engine
from cashmatch.entrypoints.cli.engines import engine as _engine

PANEL = "Models and serving"
commands = typer.Typer()
_MODEL_COLUMNS = ["version", "dataset", "months", "auto@99", "exact", "rules auto@99", "verdict"]
_MODEL_COLUMNS += ["role", "report"]


@commands.command(rich_help_panel=PANEL)
def models(as_json: params.JsonFlag = False) -> None:
    """Model versions with metrics, verdicts and lineage; the champion and the deployed one.

    --json: a list, oldest first, of one object per version:
    {version, dataset_version, training_months, artifact_digest,
    verdict, why, reasons, auto_rate@99, exact_set_accuracy, rules_auto_rate@99,
    report, champion, deployed, endpoint}
    """
    shown = views.models(session.ports().registry)
    if as_json:
        output.as_json(shown)
        return
    output.table(
        "models",
        _MODEL_COLUMNS,
        [
            [
                m["version"],
                m["dataset_version"],
                views.months_span(m["training_months"]),
                m["auto_rate@99"],
                m["exact_set_accuracy"],
                m["rules_auto_rate@99"],
                m["verdict"],
                views.role(m),
                m["report"],
            ]
            for m in shown
        ],
    )


@commands.command(rich_help_panel=PANEL)
def match(
    month: Annotated[
        str, typer.Option(help="YYYY-MM: the month whose transfers to match", callback=params.month)
    ],
    out: Annotated[Path | None, typer.Option(help="CSV to write")] = None,
    to_bucket: Annotated[
        bool,
        typer.Option(
            help="write the CSV to the workspace's blob store (the bucket on gcp) as "
            "predictions/MONTH/VERSION.csv instead of --out"
        ),
    ] = False,
    version: Annotated[
        str | None, typer.Option(help="model version (default: the deployed one)")
    ] = None,
    history_months: Annotated[int, typer.Option(min=0, max=120)] = 12,
    engine: Annotated[
        Engine, typer.Option(help="local: this process; ray: the chunks in parallel Ray tasks")
    ] = Engine.local,
    workers: Annotated[
        int, typer.Option(min=1, max=256, help="ray: CPUs of the local Ray it starts")
    ] = 2,
    ray_address: Annotated[
        str | None,
        typer.Option(
            envvar="RAY_ADDRESS",
            help="ray: join this cluster (a RayJob sets it) instead of starting a local one",
        ),
    ] = None,
) -> None:
    """Match a month of any contract warehouse with the deployed champion, into a CSV.

    One row per predicted pair, with its reason codes (`reasons`, joined by
    ";") and a sentence (`why`); a transfer that pays nothing gets one row
    with an empty invoice_id.
    """
    from cashmatch.domain.matching.chunked import ChunkFailed
    from cashmatch.service_layer.batch_matching import match_month, write_csv_atomically
    from cashmatch.service_layer.model_store import ArtifactDigestMismatch, load_verified

    if (out is None) == (not to_bucket):
        raise typer.BadParameter("give --out PATH or --to-bucket (one of them)", param_hint="--out")
    if out is not None and not out.parent.is_dir():  # found out before matching, not after
        raise typer.BadParameter(f"{out.parent} is not a folder", param_hint="--out")
    built = session.ports()
    built.warehouse.check_schema()
    chosen = version or built.registry.deployed()[0].version
    if chosen is None:
        output.fail("no deployed model yet: close a month first (cashmatch publish month.closed)")
        raise typer.Exit(1)
    try:
        model = load_verified(built.blobs, built.registry.get(chosen))
    except (KeyError, ValueError, ArtifactDigestMismatch) as exc:
        output.fail(f"cannot load model {chosen}: {exc}")
        raise typer.Exit(1) from None
    with (
        output.console.status(f"matching {month} with {chosen} ({engine.value})…"),
        _engine(engine, ray_address, workers) as first_passes,
    ):
        try:
            predictions, set_aside = match_month(
                model,
                built.warehouse,
                month,
                history_months=history_months,
                chunk=built.settings.match_chunk,
                first_passes=first_passes,
            )
        except (ValueError, ChunkFailed) as exc:  # nothing written: the CSV appears whole or not
            output.fail(str(exc))
            raise typer.Exit(1) from None
    if out is not None:
        write_csv_atomically(predictions, out)
        where = str(out)
    else:  # one put: the object appears whole or not at all
        key = f"predictions/{month}/{chosen}.csv"
        built.blobs.put(key, predictions.to_csv(index=False).encode())
        where = key
    per_transfer = predictions.groupby("transfer_id")["decision"].first()
    output.table(
        f"{month} matched by {chosen} → {where}",
        ["transfers", "pairs", "auto", "review"],
        [
            [
                len(per_transfer),
                int(predictions["invoice_id"].notna().sum()),
                int((per_transfer == "auto").sum()),
                int((per_transfer == "review").sum()),
            ]
        ],
    )
    if not set_aside.empty:
        output.table(
            f"{len(set_aside)} rows of {month} set aside as invalid (not matched)",
            ["table", "key", "reason"],
            set_aside[["table", "key", "reason"]].values.tolist(),
        )


@commands.command(rich_help_panel=PANEL)
def approve(
    version: str,
    reason: Annotated[str, typer.Option(help="why")] = "approved",
) -> None:
    """Approve a passed version for roll-out (when CASHMATCH_APPROVAL_REQUIRED is on)."""
    _decide(version, approved=True, reason=reason)


@commands.command(rich_help_panel=PANEL)
def reject(
    version: str,
    reason: Annotated[str, typer.Option(help="why it must not be rolled out")],
) -> None:
    """Refuse the roll-out of a passed version, with the reason kept in the registry."""
    _decide(version, approved=False, reason=reason)


def _decide(version: str, *, approved: bool, reason: str) -> None:
    from cashmatch.entrypoints.cli.approval import decide

    try:
        decision, event_id = decide(session.ports(), version, approved=approved, reason=reason)
    except (KeyError, ValueError) as exc:
        output.fail(str(exc))
        raise typer.Exit(1) from None
    word = "approved" if decision.approved else "rejected"
    if decision.approved != approved:
        output.fail(f"{version} was already {word} by {decision.by}; a decision is final")
        raise typer.Exit(1)
    output.say(f"{version} {word} by {decision.by}: {decision.reason}")
    if event_id:
        output.say(f"republished its evaluation.passed as {event_id}: run the deployer")


@commands.command(rich_help_panel=PANEL)
def serve() -> None:
    """Start local Ray Serve on 127.0.0.1:CASHMATCH_SERVE_PORT with the deployed model."""
    from cashmatch.entrypoints.cli.serving import serve_command

    serve_command(session.settings())


@commands.command(rich_help_panel=PANEL)
def rollback(
    to: Annotated[str, typer.Option("--to", help="model version to serve again")],
) -> None:
    """Serve an earlier version again, through the same deploy path; both pointers move to it."""
    from cashmatch.entrypoints.cli.serving import rollback_command

    rollback_command(session.settings(), to)


@commands.command("serve-stop", rich_help_panel=PANEL)
def serve_stop() -> None:
    """Stop local Ray Serve and its Ray head."""
    from cashmatch.entrypoints.cli.serving import stop_command

    stop_command(session.settings())
