"""`cashmatch demo`: the whole chain on the local stack, month by month, in two tables."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column

from cashmatch.bootstrap import bootstrap
from cashmatch.domain.events import MonthClosed, make_event, parse_event
from cashmatch.domain.match_api import json_records
from cashmatch.entrypoints.cli import output
from cashmatch.entrypoints.service_table import HANDLERS
from cashmatch.service_layer.context import Ports
from cashmatch.service_layer.dispatch import run_until_idle
from cashmatch.service_layer.publishing import publish_event
from cashmatch.settings import Settings, load_settings
from cashmatch.synth import SynthConfig, SyntheticData, generate, write_warehouse

# The order a close's deliveries are handled in: the monitor (and the guardrail answering it)
# before the retraining, as in the cloud, where a month's replay ends long before a training
# does. Otherwise the month's new champion could take the slot first and the guardrail, rightly,
# leave the version that broke the promise alone.
_FIRST = ("collector", "monitor", "guardrail", "alert-breached")
CLOSE_ORDER = {name: HANDLERS[name] for name in (*_FIRST, *HANDLERS)}

# Written into every demo folder: a new demo replaces only a folder that carries it (or an
# empty one). Names alone would not do: `warehouse.duckdb` is what the README has people use.
DEMO_MARK = ".cashmatch-demo"


def _start_afresh(folder: Path, serving: str) -> None:
    """An empty `folder` with the demo's mark; an earlier demo's is removed (its Ray head
    stopped first), any other folder with something in it is refused."""
    if folder.exists():
        if any(folder.iterdir()) and not (folder / DEMO_MARK).is_file():
            raise output.UserError(
                f"{folder} is not empty and has no {DEMO_MARK}, the mark of a folder the demo "
                "made (demos before this mark left none: remove such a folder by hand once); "
                "the demo replaces its folder, so name a new or empty one with --workspace"
            )
        if serving == "ray":
            from cashmatch.adapters.local.ray_head import stop_local_serving

            # A previous demo's Ray head may still be serving from this folder.
            stop_local_serving((folder / "workspace").resolve())
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / DEMO_MARK).write_text(
        "made by `cashmatch demo`; the next demo replaces this folder\n"
    )


def run_demo(
    workspace: Path,
    *,
    months: int,
    backfill: int,
    scale: float,
    profile: str = "default",
    serving: str = "ray",
    scenario: str = "none",
) -> None:
    """Fresh workspace, synthetic warehouse, then close each month and run the chain to idle.

    `scenario` "shift": from the second-to-last month on, subscription customers pay the newest
    of their equal open invoices first (`SynthConfig.switch_from`); the champion's threshold
    no longer holds there, and the last month shows what the guardrail's answer did."""
    # Everything is checked before anything is deleted or written.
    if scenario not in SCENARIOS:
        raise output.UserError(f"scenario must be one of {', '.join(SCENARIOS)}, got {scenario!r}")
    if scenario == "shift" and months - backfill < 2:
        raise output.UserError(
            f"the shift scenario needs two months after the backfill (the shift, the one after "
            f"it): --months {months} --backfill {backfill} leaves {max(months - backfill, 0)}"
        )
    try:
        config = SynthConfig(
            months=months,
            scale=scale,
            profile=profile,
            switch_from=shift_month(months) if scenario == "shift" else None,
        )
    except ValueError as exc:
        raise output.UserError(str(exc)) from None
    warehouse = workspace / "warehouse.duckdb"
    settings = load_settings(
        workspace=workspace / "workspace", warehouse=str(warehouse), serving=serving
    )
    _start_afresh(workspace, serving)
    started = time.monotonic()
    data = _synthesize(config, warehouse)
    all_months = sorted(data.transfers["booking_date"].dt.strftime("%Y-%m").unique())
    # Ray Serve narrates every start and update at INFO; the demo's table says what matters.
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    ports = bootstrap(settings)
    to_close = all_months[backfill - 1 :]
    show_months(_close_months(ports, to_close))
    _show_idempotency(ports, to_close[-1])
    _show_promise(ports)
    if scenario == "shift":
        show_shift(shift_rows(ports), shift_month(months))
    if serving == "ray":
        _ask_the_matcher(ports, data, to_close[-1])
    output.say(
        f"dead letters: {len(ports.bus.dead_letters())}; workspace {settings.workspace}; "
        f"{time.monotonic() - started:.0f} s in all. Try: cashmatch --workspace "
        f"{settings.workspace} models | events"
    )
    _show_where(settings, ports)


SCENARIOS = ("none", "shift")


def shift_month(months: int, start: str = SynthConfig.start) -> str:
    """The shift scenario's month: the second-to-last, so the last shows the recovery."""
    return str(pd.Period(start, freq="M") + months - 2)


def shift_rows(ports: Ports) -> list[dict[str, Any]]:
    """Per closed month: the version serving at its close, its threshold, auto share, realized
    precision and bound, state, and what the guardrail did about that month."""
    from cashmatch.service_layer import performance_records
    from cashmatch.service_layer.reporting.promise import served_at_close

    actions: dict[str, str] = {}
    for change in ports.registry.guardrail()[0].history:
        if change.override is not None and change.override.month is not None:
            actions[change.override.month] = f"raised to {change.override.threshold:.4f}"
    rows = served_at_close(performance_records.summary_rows(ports))
    # A raise the guardrail made because of a month: what it would have left automatic there.
    cost = {
        r["month"]: r["holding_auto_share"]
        for r in rows
        if r["month"] in actions and r.get("holding_auto_share") is not None
    }
    return [
        {
            "month": r["month"],
            "version": r["version"],
            "threshold": r["threshold"],
            "threshold_source": r["threshold_source"],
            "auto_share": r["auto_share"],
            "auto": r["auto"],
            "auto_precision": r["auto_precision"],
            "auto_precision_lower": r["auto_precision_lower"],
            "state": r["state"],
            "guardrail": actions.get(r["month"], "–"),
            "auto_share_at_raised": cost.get(r["month"]),
        }
        for r in rows
    ]


def show_shift(rows: list[dict[str, Any]], month: str) -> None:
    """The shift scenario's table (README, "The promise under a shift")."""

    def pct(value: float | None) -> str:
        return "–" if value is None else f"{value:.2%}"

    output.table(
        f"the shift: subscription customers pay the newest equal invoice first from {month}",
        ["month", "version", "thresh.", "auto", "right (bound)", "state", "guardrail"],
        [
            [
                r["month"],
                output.short(r["version"]),
                f"{r['threshold']:.4f}" + ("" if r["threshold_source"] == "model" else "*"),
                f"{r['auto_share']:.1%}",
                f"{pct(r['auto_precision'])} ({pct(r['auto_precision_lower'])})",
                r["state"],
                r["guardrail"],
            ]
            for r in rows
        ],
    )
    for r in rows:
        if r["auto_share_at_raised"] is not None:
            output.say(
                f"the raise on {r['month']} costs auto share: {r['auto_share']:.1%} → "
                f"{r['auto_share_at_raised']:.1%} of that month at {r['guardrail'][10:]} "
                f"for {output.short(r['version'])}; a champion trained on {r['month']} "
                "starts from its own threshold"
            )
    if any(r["threshold_source"] != "model" for r in rows):
        output.hint("* a guardrail override was in force")


def _show_where(settings: Settings, ports: Ports) -> None:
    """The matcher's URL and the console's, with the command that starts the console.

    The console is not started here: the matcher is left serving because Ray Serve is a
    detached head with a stop command of its own (serve-stop); the console is a foreground
    process, and one left behind by `make demo` would hold its port with nothing to stop it but
    a kill. Its token is made now, so the URL printed is the one it will answer at."""
    from cashmatch.entrypoints.console.server import console_url

    deployed = ports.registry.deployed()[0]
    serving = deployed.endpoint if (deployed.endpoint or "").startswith("http") else None
    command = f"cashmatch --workspace {settings.workspace} --warehouse {settings.warehouse} ui"
    output.table(
        "where to look",
        ["what", "URL", "how"],
        [
            [
                "matcher",
                serving or "not serving",
                "POST /v1/match (docs at /docs); stop: cashmatch --workspace "
                f"{settings.workspace} serve-stop"
                if serving
                else "--serving ray serves the champion",
            ],
            ["console", console_url(settings), f"start it first: {command} (Ctrl-C stops it)"],
        ],
    )


def _synthesize(config: SynthConfig, warehouse: Path) -> SyntheticData:
    """The finance system's warehouse, written to `warehouse`."""
    with output.console.status("synthesizing the finance system's warehouse…"):
        data = generate(config)
        write_warehouse(data, warehouse)
    months = data.transfers["booking_date"].dt.strftime("%Y-%m").nunique()
    output.say(
        f"warehouse {warehouse}: {months} months, {len(data.transfers)} transfers, "
        f"{len(data.invoices)} invoices, {len(data.matches)} labels"
    )
    return data


def _close_months(ports: Ports, to_close: list[str]) -> list[dict[str, Any]]:
    """Close each month as the finance system would and run the chain to idle after each;
    what became of every month."""
    facts = []
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=output.console,
    )
    with progress:
        task = progress.add_task("closing months", total=len(to_close))
        for month in to_close:
            progress.update(task, description=f"closing {month}")
            event = make_event(MonthClosed(month=month), source="/finance-system")
            publish_event(ports.bus, event)
            run_until_idle(ports, CLOSE_ORDER, timeout_s=600)
            facts.append(month_facts(ports, month))
            progress.advance(task)
    return facts


# The month table of the demo, in two parts so that each fits 80 columns: the data and what
# became of the month's candidate, then the scores it was judged on. Version ids are shortened
# (output.short); the lines under the tables and `cashmatch models` give them whole.
_CHAIN_COLUMNS = [
    ("month", "month"),
    ("train", "train"),
    ("test", "test"),
    ("new", "new"),
    ("quar.", "quarantined"),
    ("candidate", "candidate"),
    ("verdict", "verdict"),
    ("deployed", "deployed"),
]
_SCORE_COLUMNS = [
    ("month", "month"),
    ("candidate\nauto@99", "auto_rate"),
    ("candidate\nexact", "exact"),
    ("champion", "champion"),
    ("champion\nauto@99", "champion_auto_rate"),
    ("champion\nnew month", "champion_new_month"),
    ("rules\nauto@99", "rules_auto_rate"),
]
_IDS = {"candidate", "champion", "deployed"}


def show_months(facts: list[dict[str, Any]]) -> None:
    """The chain month by month: two tables, then each month's verdict in words."""

    def cells(columns: list[tuple[str, str]]) -> list[list[Any]]:
        return [
            [output.short(f[key]) if key in _IDS else f[key] for _, key in columns] for f in facts
        ]

    def headers(columns: list[tuple[str, str]]) -> list[Column]:
        return [Column(header, no_wrap=True) for header, _ in columns]

    output.table(
        "the chain, month by month (first close = backfill; test set frozen then)",
        headers(_CHAIN_COLUMNS),
        cells(_CHAIN_COLUMNS),
    )
    output.table(
        "the scores behind each verdict, on the frozen test set",
        headers(_SCORE_COLUMNS),
        cells(_SCORE_COLUMNS),
    )
    output.say(
        "auto@99: the share of transfers matched automatically at 99% precision; exact: the "
        "share whose invoices are exactly right; champion new month: the champion's auto@99 on "
        "the new month alone",
        style="dim",
    )
    for f in facts:
        if f["verdict"] == "failed":
            output.say(f"{f['month']} failed: see `cashmatch events`")
        elif f["reasons"]:
            output.say(f"{f['month']} {f['candidate']} {f['verdict']}: " + "; ".join(f["reasons"]))


def month_facts(ports: Ports, month: str) -> dict[str, Any]:
    """What the chain made of `month`: its data, its candidate and verdict, the deployment."""
    dataset = _last_event(ports, "dataset.ready", month)
    trained = _last_event(ports, "model.trained", month)
    deployed, _ = ports.registry.deployed()
    facts: dict[str, Any] = dict.fromkeys(key for _, key in _CHAIN_COLUMNS + _SCORE_COLUMNS)
    facts.update(month=month, verdict="failed", reasons=[], deployed=deployed.version)
    if dataset is None or trained is None:
        return facts
    rows = dataset["rows"]
    verdict = ports.registry.verdict(trained["model_version"])
    champion_metrics = (verdict.champion_metrics if verdict else None) or {}
    newest = verdict.newest_month_metrics if verdict else {}
    facts.update(
        {
            "train": rows["train_transfers"],
            "test": rows["test_transfers"],
            "new": rows["month_transfers"],
            "quarantined": dataset["quarantined"],
            "candidate": trained["model_version"],
            "auto_rate": verdict.metrics.get("auto_rate@99") if verdict else None,
            "exact": verdict.metrics.get("exact_set_accuracy") if verdict else None,
            "champion": verdict.champion_version if verdict else None,
            "champion_auto_rate": champion_metrics.get("auto_rate@99"),
            "champion_new_month": newest.get("champion", {}).get("auto_rate@99"),
            "rules_auto_rate": verdict.baseline_metrics.get("auto_rate@99") if verdict else None,
            "verdict": ("passed" if verdict.passed else "rejected") if verdict else "pending",
            "reasons": list(verdict.reasons) if verdict else [],
        }
    )
    return facts


def _last_event(ports: Ports, topic: str, month: str) -> dict | None:
    for record in ports.bus.log(limit=500, topic=topic):
        if record.attributes.get("month") == month:
            _, data, _ = ports.bus.get_message(record.message_id)
            return parse_event(data).data
    return None


def _ask_the_matcher(ports: Ports, data: SyntheticData, month: str) -> None:
    """One real HTTP request to the champion on Ray Serve, as the finance system would send it."""
    import httpx

    deployed, _ = ports.registry.deployed()
    if not deployed.endpoint or not deployed.endpoint.startswith("http"):
        output.fail("nothing is serving: see `cashmatch events`")
        return
    transfers = data.transfers[data.transfers["booking_date"].dt.strftime("%Y-%m") == month]
    labels = data.matches.groupby("transfer_id")["invoice_id"].apply(list)
    # A collective payment shows the most: a transfer that paid two invoices or more.
    multi = [t for t in transfers["transfer_id"] if len(labels.get(t, [])) >= 2]
    transfer = transfers[transfers["transfer_id"] == (multi or list(transfers["transfer_id"]))[0]]
    paid = set(labels.get(transfer["transfer_id"].iloc[0], []))
    row = transfer.iloc[0]
    start = pd.Timestamp(f"{month}-01")
    same_side = data.invoices[
        (
            data.invoices["direction"]
            == ("receivable" if row["direction"] == "incoming" else "payable")
        )
        & (data.invoices["issue_date"] < start + pd.offsets.MonthBegin(1))
        & (data.invoices["currency"] == row["currency"])
    ]
    pool = pd.concat(
        [
            same_side[same_side["invoice_id"].isin(paid)],
            same_side[~same_side["invoice_id"].isin(paid)].tail(48),
        ]
    )
    body = {
        "transfer": json_records(transfer)[0],
        "open_invoices": json_records(pool),
    }
    response = httpx.post(f"{deployed.endpoint}/v1/match", json=body, timeout=60)
    answer = response.json()
    output.say(
        f"\nPOST {deployed.endpoint}/v1/match → {response.status_code}: transfer "
        f"{row['transfer_id']} of {row['amount']:.2f} {row['currency']}, title {row['title']!r}, "
        f"against {len(pool)} open invoices"
    )
    output.table(
        f"answered by {answer.get('model_version')}: decision {answer.get('decision')}, "
        f"confidence {answer.get('confidence', 0):.3f}",
        ["invoice", "allocated", "truly paid by it"],
        [
            [a["invoice_id"], a["amount"], a["invoice_id"] in paid]
            for a in answer.get("allocations", [])
        ],
    )
    output.say(
        f"the champion keeps serving at {deployed.endpoint} (docs at /docs); stop it with "
        f"`cashmatch --workspace {ports.settings.workspace} serve-stop`"
    )


def _show_promise(ports: Ports) -> None:
    """What the serving versions decided on their own, month by month, and what the guardrail
    did about it (docs/DESIGN.md, "The promise")."""
    from cashmatch.entrypoints.cli.performance_commands import show_rows
    from cashmatch.service_layer import performance_records

    show_rows(performance_records.summary_rows(ports))
    override = ports.registry.guardrail()[0].override
    if override is not None:
        output.say(
            f"guardrail: {override.version} now serves at threshold {override.threshold:.4f} "
            f"({override.describe()})"
        )


def _show_idempotency(ports: Ports, month: str) -> None:
    """Republish the last month.closed: the same dataset and model come back, nothing new."""
    before = len(ports.registry.versions())
    event = make_event(MonthClosed(month=month), source="/cli/republish")
    publish_event(ports.bus, event)
    report = run_until_idle(ports, HANDLERS, timeout_s=600)
    after = len(ports.registry.versions())
    outcomes = pd.DataFrame(report.outcomes, columns=["service", "id", "outcome"])
    output.table(
        f"republished month.closed {month}: {after - before} new model versions",
        ["service", "outcome"],
        outcomes[["service", "outcome"]].values.tolist(),
    )
