"""`cashmatch demo`: the whole chain on the local stack, month by month, in one table."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from cli import output
from services.runner import run_until_idle
from shared.bootstrap import Ports, bootstrap
from shared.events import MonthClosed, make_event, parse_event
from shared.publishing import publish_event
from shared.settings import load_settings


def run_demo(
    workspace: Path, *, months: int, backfill: int, scale: float, profile: str = "default"
) -> None:
    """Fresh workspace, synthetic warehouse, then close each month and run the chain to idle."""
    from shared.synth import SynthConfig, generate, write_warehouse

    if workspace.exists():
        shutil.rmtree(workspace)
    workspace.mkdir(parents=True)
    warehouse = workspace / "warehouse.duckdb"
    started = time.monotonic()
    with output.console.status("synthesizing the finance system's warehouse…"):
        data = generate(SynthConfig(months=months, scale=scale, profile=profile))
        write_warehouse(data, warehouse)
    all_months = sorted(data.transfers["booking_date"].dt.strftime("%Y-%m").unique())
    output.console.print(
        f"warehouse {warehouse}: {len(all_months)} months, {len(data.transfers)} transfers, "
        f"{len(data.invoices)} invoices, {len(data.matches)} labels"
    )
    settings = load_settings(workspace=workspace / "workspace", warehouse=str(warehouse))
    ports = bootstrap(settings)

    to_close = all_months[backfill - 1 :]
    rows = []
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
            run_until_idle(ports, timeout_s=600)
            rows.append(_month_row(ports, month))
            progress.advance(task)

    output.table(
        "the chain, month by month (first close = backfill; test set frozen then)",
        [
            "month",
            "train",
            "test",
            "new",
            "quar.",
            "candidate",
            "auto@99",
            "exact",
            "champion",
            "champ auto@99",
            "champ on new month",
            "rules auto@99",
            "verdict",
            "deployed",
        ],
        rows,
    )
    for month in to_close:
        trained = _last_event(ports, "model.trained", month)
        verdict = ports.registry.verdict(trained["model_version"]) if trained else None
        if verdict:
            output.console.print(f"{month} {verdict.version}: " + "; ".join(verdict.reasons))
    _show_idempotency(ports, to_close[-1])
    output.console.print(
        f"dead letters: {len(ports.bus.dead_letters())}; workspace {settings.workspace}; "
        f"{time.monotonic() - started:.0f} s in all. Try: cashmatch --workspace "
        f"{settings.workspace} models | events"
    )


def _month_row(ports: Ports, month: str) -> list[object]:
    dataset = _last_event(ports, "dataset.ready", month)
    trained = _last_event(ports, "model.trained", month)
    deployed, _ = ports.registry.deployed()
    if dataset is None or trained is None:
        return [month, *["–"] * 4, "failed: see `cashmatch events`", *["–"] * 8]
    rows = dataset["rows"]
    verdict = ports.registry.verdict(trained["model_version"])
    metrics = verdict.metrics if verdict else {}
    champion_metrics = (verdict.champion_metrics if verdict else None) or {}
    newest = verdict.newest_month_metrics if verdict else {}
    return [
        month,
        rows["train_transfers"],
        rows["test_transfers"],
        rows["month_transfers"],
        dataset["quarantined"],
        trained["model_version"],
        metrics.get("auto_rate@99"),
        metrics.get("exact_set_accuracy"),
        verdict.champion_version if verdict else None,
        champion_metrics.get("auto_rate@99"),
        newest.get("champion", {}).get("auto_rate@99"),
        verdict.baseline_metrics.get("auto_rate@99") if verdict else None,
        ("passed" if verdict.passed else "rejected") if verdict else "pending",
        deployed.version,
    ]


def _last_event(ports: Ports, topic: str, month: str) -> dict | None:
    for record in ports.bus.log(limit=500, topic=topic):
        if record.attributes.get("month") == month:
            _, data, _ = ports.bus.get_message(record.message_id)
            return parse_event(data).data
    return None


def _show_idempotency(ports: Ports, month: str) -> None:
    """Republish the last month.closed: the same dataset and model come back, nothing new."""
    before = len(ports.registry.versions())
    event = make_event(MonthClosed(month=month), source="/cli/republish")
    publish_event(ports.bus, event)
    report = run_until_idle(ports, timeout_s=600)
    after = len(ports.registry.versions())
    outcomes = pd.DataFrame(report.outcomes, columns=["service", "id", "outcome"])
    output.table(
        f"republished month.closed {month}: {after - before} new model versions",
        ["service", "outcome"],
        outcomes[["service", "outcome"]].values.tolist(),
    )
