"""`cashmatch status`: the whole picture in one place, for people (tables) and scripts (JSON)."""

from __future__ import annotations

from typing import Any

from cashmatch.entrypoints.cli import output, views
from cashmatch.service_layer import overview
from cashmatch.service_layer.context import Ports


def gather(ports: Ports, *, events: int = 10) -> dict[str, Any]:
    """Months, datasets, models with verdicts, champion lineage, deployment, recent events
    (`service_layer.overview.status`: the console reads the same)."""
    return overview.status(ports, events=events)


def _by(cause: str) -> str:
    """Who moved a pointer: a person's command as it is, an event by the start of its id."""
    return cause if cause.startswith("cli:") else output.short(cause) or ""


def show(status: dict[str, Any]) -> None:
    """Print the status as tables."""
    _show_data(status)
    _show_models(status)
    _show_promise(status)
    _show_pointers(status)
    _show_events(status)


def _show_data(status: dict[str, Any]) -> None:
    test = status["test_set"]
    output.say(
        "frozen test set: "
        + (
            f"{test['version']} ({', '.join(test['months'])}; "
            f"{test['rows']['transfers']} transfers)"
            if test
            else "none yet"
        )
    )
    output.table(
        "months",
        ["month", "train transfers", "quarantined", "dataset", "training months"],
        [
            [
                m["month"],
                m["train_transfers"],
                m["quarantined"],
                m["dataset_version"],
                f"{len(m['training_months'])}",
            ]
            for m in status["months"]
        ],
    )


def _show_models(status: dict[str, Any]) -> None:
    output.table(
        "models",
        ["version", "months", "verdict", "auto@99", "why", "report"],
        [
            [
                m["version"],
                views.months_span(m["training_months"]),
                m["verdict"],
                m["auto_rate@99"],
                m["why"],
                m["report"],
            ]
            for m in status["models"]
        ],
    )


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


def _show_promise(status: dict[str, Any]) -> None:
    promise = status["promise"]
    if promise["months"]:
        output.table(
            f"the promise: auto decisions ≥ {promise['target']:.0%} right, month by month",
            ["month", "served by", "auto", "right", "lower 95%", "estimated", "state"],
            [
                [
                    r["month"],
                    output.short(r["version"]),
                    f"{r['auto_share']:.1%}",
                    _pct(r["auto_precision"]),
                    _pct(r["auto_precision_lower"]),
                    _pct(r["estimated_precision"]),
                    r["state"],
                ]
                for r in promise["months"]
            ],
        )
    override = promise["override"]
    output.say(
        "guardrail: no override, every version at its own threshold"
        if override is None
        else f"guardrail: threshold {override['threshold']:.4f} for "
        f"{override['version'] or 'every version'} ({override['source']})",
        style=None if override is None else "yellow",
    )


def _show_pointers(status: dict[str, Any]) -> None:
    champion = status["champion"]
    if champion:
        output.say(
            f"champion {champion['version']} ← dataset {champion['dataset_version']} "
            f"← months {', '.join(champion['training_months'])}",
            style="bold",
        )
    deployed = status["deployed"]
    if deployed["version"] is not None:
        output.say(f"deployed {deployed['version']} at {deployed['endpoint']}")
    else:
        output.say("nothing deployed yet")
    if champion and champion["version"] != deployed["version"]:
        version, approval = champion["version"], champion["approval"]
        output.say(
            f"champion {version} waits for approval: cashmatch approve {version}"
            if approval == "waiting"
            else f"champion {version} is not deployed ({approval or 'roll-out pending'})"
        )
    output.table(
        "promotions and roll-outs",
        ["pointer", "at", "version", "previous", "by", "reason"],
        [
            ["champion", h["at"][:19], h["version"], h["previous"], _by(h["by"]), h["reason"]]
            for h in status["champion_history"]
        ]
        + [
            ["deployed", h["at"][:19], h["version"], h["previous"], _by(h["by"]), h["reason"]]
            for h in deployed["history"]
        ],
    )


def _show_events(status: dict[str, Any]) -> None:
    output.table(
        f"last events ({status['dead_letters']} dead letters in all)",
        ["at", "topic", "month", "subscriber", "state", "outcome"],
        [
            [
                e["published_at"][11:19],
                e["topic"],
                e["month"],
                e["subscription"],
                e["state"],
                e["detail"][:70],
            ]
            for e in status["events"]
        ],
    )
