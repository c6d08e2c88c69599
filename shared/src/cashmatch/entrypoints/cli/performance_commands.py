"""Commands about the promise: realized precision of every closed month, the estimate for an
open one, and the guardrail's threshold override (show, clear)."""

from __future__ import annotations

from typing import Annotated

import typer

from cashmatch.entrypoints.cli import output, params, session

PANEL = "The promise"
commands = typer.Typer()
guardrail_commands = typer.Typer(
    no_args_is_help=True, help="The guardrail's threshold override: show it, clear it."
)
commands.add_typer(guardrail_commands, name="guardrail", rich_help_panel=PANEL)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


@commands.command(rich_help_panel=PANEL)
def performance(as_json: params.JsonFlag = False) -> None:
    """Realized performance of every closed month: what the serving version decided on its
    own, scored against the month's labels at the threshold in force.

    --json: a list, oldest first, of {month, version, transfers, auto, auto_share,
    auto_precision, auto_precision_lower, estimated_precision, estimated_precision_at_rollout,
    estimated_auto_share_at_rollout, exact_set_accuracy, threshold, threshold_source,
    holding_threshold, holding_auto_share, target, state, holds, unseen_labels, by_direction,
    by_currency}; a stored record that cannot be read is left out with a warning on stderr
    """
    from cashmatch.service_layer import performance_records

    rows = performance_records.summary_rows(session.ports())
    if as_json:
        output.as_json(rows)
        return
    show_rows(rows)


def show_rows(rows: list[dict]) -> None:
    """The realized-performance table (also the demo's last word on each month)."""
    if not rows:
        output.say("no closed month has been scored yet (the monitor does it at each close)")
        return
    output.table(
        "realized performance (auto decisions against the month's labels)",
        ["month", "version", "auto", "right", "lower", "est.", "thresh.", "state"],
        [
            [
                r["month"],
                output.short(r["version"]),
                f"{r['auto_share']:.1%}",
                _pct(r["auto_precision"]),
                _pct(r["auto_precision_lower"]),
                _pct(r["estimated_precision"]),
                f"{r['threshold']:.3f}" + ("" if r["threshold_source"] == "model" else "*"),
                r["state"],
            ]
            for r in rows
        ],
    )
    if any(r["threshold_source"] != "model" for r in rows):
        output.hint("* a guardrail override was in force (cashmatch guardrail show)")
    output.say(
        "auto: share settled without a person; right: exactly right of those; lower: its Wilson "
        "95% lower bound; est.: what the confidences promised before the labels",
        style="dim",
    )


@commands.command(rich_help_panel=PANEL)
def estimate(
    month: Annotated[
        str, typer.Option(help="YYYY-MM: an open month (labels not final)", callback=params.month)
    ],
    version: Annotated[
        str | None, typer.Option(help="model version (default: the deployed one)")
    ] = None,
    as_json: params.JsonFlag = False,
) -> None:
    """Expected auto share and precision of a month before its labels exist, from the
    calibrated confidences of the version's answers on the transfers booked so far.

    --json: {month, version, transfers, auto, auto_share, expected_auto_precision}
    """
    from cashmatch.service_layer import performance

    ports = session.ports()
    chosen = version or ports.registry.deployed()[0].version
    if chosen is None:
        output.fail("no deployed model yet: close a month first")
        raise typer.Exit(1)
    try:
        found = performance.estimate_open_month(ports, month, chosen)
    except (KeyError, ValueError) as exc:
        output.fail(str(exc).strip("'\""))
        raise typer.Exit(1) from None
    shown = {"month": month, "version": chosen, **found.model_dump()}
    if as_json:
        output.as_json(shown)
        return
    output.table(
        f"estimate for {month} (no labels used)",
        ["version", "transfers", "auto", "auto share", "expected precision"],
        [
            [
                output.short(chosen),
                found.transfers,
                found.auto,
                f"{found.auto_share:.1%}",
                _pct(found.expected_auto_precision),
            ]
        ],
    )


@guardrail_commands.command("show")
def guardrail_show(as_json: params.JsonFlag = False) -> None:
    """The threshold override in force (if any) and every change of it, with who and why.

    --json: {override: {threshold, version, month, set_at, by, reason} | null, history: [...]}
    """
    guardrail, _ = session.ports().registry.guardrail()
    if as_json:
        output.as_json(guardrail.model_dump(mode="json"))
        return
    override = guardrail.override
    if override is None:
        output.say("no override: every version serves at its own calibrated threshold")
    else:
        scope = override.version or "every version (kept on purpose)"
        output.say(f"threshold {override.threshold:.4f} for {scope}: {override.describe()}")
    if guardrail.history:
        output.table(
            "changes",
            ["at", "threshold", "for", "by", "reason"],
            [
                [
                    c.at.strftime("%Y-%m-%d %H:%M"),
                    "cleared" if c.override is None else f"{c.override.threshold:.4f}",
                    "–" if c.override is None else (c.override.version or "all"),
                    c.by,
                    c.reason,
                ]
                for c in guardrail.history
            ],
        )


@guardrail_commands.command("clear")
def guardrail_clear(
    reason: Annotated[str, typer.Option(help="why, recorded with who cleared it")],
    by: Annotated[str, typer.Option(help="who clears it (recorded)")] = "",
) -> None:
    """Clear the override: the deployed version serves at its own threshold again (rolled out
    in place, as a model swap is)."""
    import getpass

    ports = session.ports()
    registry = ports.registry
    who = f"cli:{by or getpass.getuser()}"
    if registry.guardrail()[0].override is None:
        output.say("no override to clear")
        return
    registry.set_override(None, by=f"{who}:{ports.clock().isoformat()}", reason=reason)
    deployed = registry.deployed()[0].version
    if deployed is not None:
        ports.serving.roll_out(registry.get(deployed), registry.override_for(deployed))
    output.say(f"override cleared by {who}: {reason}")
