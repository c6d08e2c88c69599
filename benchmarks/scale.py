"""How the monthly cycle's cost grows: collect, train, evaluate, deploy at 10k, 100k, 1M
transfers a month on the local stack. Each stage runs in its own process, so its wall time and
peak memory are its own. Prints a table and the growth factor between sizes.

    .venv/bin/python benchmarks/scale.py --sizes 10000 100000 1000000

A size whose estimated peak memory does not fit in what the machine has free is skipped with
that reason instead of dying part-way.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

TRANSFERS_PER_SCALE = 1_500  # the simulator makes about this many transfers a month at scale 1
STAGES = ["collector", "trainer", "evaluator", "deployer"]
# Measured here (3.5 GB at 100k/month, ~12 KB per transfer of the 3 months; the trainer fits a
# sample of big months, so the evaluator's full prediction grows alike) with a margin: peak RSS
# of the heaviest stage per transfer of the 3 months, extrapolated linearly.
BYTES_PER_TRAINING_TRANSFER = 15_000


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def run_stage(service: str, workspace: Path, warehouse: Path) -> dict:
    """One delivery of `service` in a fresh process; its seconds, peak RSS and outcome."""
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--stage",
            service,
            "--workspace",
            str(workspace),
            "--warehouse",
            str(warehouse),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def stage_main(service: str, workspace: Path, warehouse: Path) -> None:
    """Inside the child: pull one delivery for `service`, handle it, report."""
    from cashmatch.bootstrap import bootstrap
    from cashmatch.entrypoints.service_table import HANDLERS
    from cashmatch.service_layer.dispatch import dispatch
    from cashmatch.settings import load_settings

    ports = bootstrap(load_settings(workspace=workspace, warehouse=str(warehouse)))
    started = time.perf_counter()
    deliveries = ports.bus.pull(service, max_messages=1)
    outcome = (
        dispatch(service, HANDLERS[service], deliveries[0], ports)
        if deliveries
        else "nothing to do"
    )
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "outcome": outcome}))


def measure(size: int, root: Path, console: Console) -> dict[str, dict] | str:
    """The cycle of the third month (after a two-month backfill) at `size` transfers a month."""
    need = BYTES_PER_TRAINING_TRANSFER * size * 3
    free = available_bytes()
    if need > free:
        return f"skipped: needs ~{need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB available"
    from cashmatch.bootstrap import bootstrap
    from cashmatch.domain.events import MonthClosed, make_event
    from cashmatch.service_layer.publishing import publish_event
    from cashmatch.settings import load_settings
    from cashmatch.synth import SynthConfig, generate, write_warehouse

    folder = root / f"size-{size}"
    warehouse = folder / "warehouse.duckdb"
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    data = generate(SynthConfig(months=3, scale=size / TRANSFERS_PER_SCALE, seed=5))
    write_warehouse(data, warehouse)
    console.print(
        f"{size:,}/month: synthesized {len(data.transfers):,} transfers "
        f"in {time.perf_counter() - t0:.0f} s"
    )
    months = sorted(data.transfers["booking_date"].dt.strftime("%Y-%m").unique())
    workspace = folder / "workspace"
    ports = bootstrap(load_settings(workspace=workspace, warehouse=str(warehouse)))
    result: dict[str, dict] = {}
    for month in months[1:]:
        publish_event(ports.bus, make_event(MonthClosed(month=month), source="/bench"))
        for stage in STAGES:
            measured = run_stage(stage, workspace, warehouse)
            if month == months[-1]:
                result[stage] = measured
            console.print(
                f"  {month} {stage}: {measured['seconds']:.1f} s, "
                f"{measured['peak_mb']:.0f} MB — {measured['outcome'][:60]}"
            )
    return result


def main() -> None:
    """Measure each size and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--stage", choices=STAGES)
    parser.add_argument("--workspace", type=Path)
    parser.add_argument("--warehouse", type=Path)
    args = parser.parse_args()
    if args.stage:
        stage_main(args.stage, args.workspace, args.warehouse)
        return
    console = Console()
    results: dict[int, dict[str, dict] | str] = {}
    with tempfile.TemporaryDirectory(prefix="cashmatch-scale-") as tmp:
        for size in args.sizes:
            results[size] = measure(size, Path(tmp), console)
    table = Table(
        title="monthly cycle (third month, after a two-month backfill): seconds / peak MB"
    )
    table.add_column("transfers/month", justify="right")
    for stage in STAGES:
        table.add_column(stage, justify="right")
    table.add_column("growth vs previous size (time ratio / size ratio)")
    previous: tuple[int, float] | None = None
    for size, result in results.items():
        if isinstance(result, str):
            table.add_row(f"{size:,}", *[""] * len(STAGES), result)
            continue
        total = sum(r["seconds"] for r in result.values())
        growth = ""
        if previous:
            growth = f"{(total / previous[1]) / (size / previous[0]):.2f}"
        previous = (size, total)
        table.add_row(
            f"{size:,}",
            *[f"{result[s]['seconds']:.1f} / {result[s]['peak_mb']:.0f}" for s in STAGES],
            growth,
        )
    console.print(table)


if __name__ == "__main__":
    main()
