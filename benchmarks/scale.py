"""How the monthly cycle's cost grows: collect, train on 12 months, evaluate, monitor, deploy and
match a month at 10k, 100k, 1M transfers a month on the local stack.

    .venv/bin/python benchmarks/scale.py --sizes 10000 100000 1000000 [--json]

The warehouse holds 13 months: closing the 12th backfills 12 months of history (and freezes the
test set), closing the 13th is the cycle measured. Every stage runs in a process of its own, so
its wall time and peak RSS (the child's ru_maxrss, from wait4) are its own. The generated
warehouse is cached on disk (SCALE_BENCH_CACHE, default ~/.cache/cashmatch-bench) keyed by
its parameters and the simulator's source, so a rerun skips the generation.

A size whose estimated peak memory does not fit in what the machine has free is skipped with
that reason instead of dying part-way. `match --engine ray` is measured beside the
single-process `match` when the CLI offers the option, otherwise its row says so.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

TRANSFERS_PER_SCALE = 1_500  # the simulator makes about this many transfers a month at scale 1
MONTHS = 13  # 12 months of history, then the month whose cycle is measured
SEED = 5
HANDLED = ["collector", "trainer", "evaluator", "deployer", "monitor"]
STAGES = [*HANDLED, "match", "match-ray"]
ROWS = ["backfill", *STAGES]  # backfill: the collector's first close (12 months at once)
# Peak RSS per transfer, measured here with a margin. The simulator holds all 13 months at once
# (3.2 GB at 1.25M transfers). A stage holds about a month's worth; the heaviest left is the
# trainer's calibration, which decides each of its two months whole (the evaluator's 100k-month
# prediction took 3.0 GB), so ~30 KB a monthly transfer, and a margin.
GENERATION_BYTES_PER_TRANSFER = 3_000
STAGE_BYTES_PER_MONTHLY_TRANSFER = 40_000
SYNTH_DIR = Path(__file__).resolve().parents[1] / "shared/src/cashmatch/synth"


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def cache_dir() -> Path:
    return Path(os.environ.get("SCALE_BENCH_CACHE", Path.home() / ".cache/cashmatch-bench"))


def warehouse_key(size: int) -> str:
    """Parameters plus the simulator's source: a changed simulator makes a new warehouse."""
    h = hashlib.sha256(f"{size}/{MONTHS}/{SEED}".encode())
    for path in sorted(SYNTH_DIR.glob("*.py")):
        h.update(path.read_bytes())
    return f"scale-{size}-{MONTHS}m-{h.hexdigest()[:12]}"


def timed(cmd: list[str]) -> dict:
    """Run `cmd` as a child; its seconds, peak RSS (MB) and last stdout line."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        lines = out.read().strip().splitlines()
        if child.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:4])}… failed: {err.read()[-2000:]}")
    return {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024, "outcome": (lines or [""])[-1]}


def generate_warehouse(size: int, console: Console) -> tuple[Path, float | None]:
    """The cached warehouse of `size` (generated in a child if missing) and the seconds spent."""
    path = cache_dir() / f"{warehouse_key(size)}.duckdb"
    if path.exists():
        return path, None
    path.parent.mkdir(parents=True, exist_ok=True)
    scale = size / TRANSFERS_PER_SCALE
    code = (
        "import sys; from pathlib import Path;"
        "from cashmatch.synth import SynthConfig, generate, write_warehouse;"
        f"d = generate(SynthConfig(months={MONTHS}, scale={scale!r}, seed={SEED}));"
        "write_warehouse(d, Path(sys.argv[1])); print(len(d.transfers))"
    )
    done = timed([sys.executable, "-c", code, str(path)])
    console.print(
        f"{size:,}/month: synthesized {int(done['outcome']):,} transfers in "
        f"{done['seconds']:.0f} s, peak {done['peak_mb']:.0f} MB"
    )
    return path, done["seconds"]


def stage_main(service: str, workspace: Path, warehouse: Path, month: str) -> None:
    """Inside the child: handle `service`'s delivery for `month`, report. Deliveries of other
    months (a stage left out of the backfill close by --stages) are acked unhandled."""
    from cashmatch.bootstrap import bootstrap
    from cashmatch.entrypoints.service_table import HANDLERS
    from cashmatch.service_layer.dispatch import dispatch
    from cashmatch.settings import load_settings

    ports = bootstrap(load_settings(workspace=workspace, warehouse=str(warehouse)))
    outcome = "nothing to do"
    for delivery in ports.bus.pull(service, max_messages=20):
        if delivery.attributes.get("month") == month:
            outcome = dispatch(service, HANDLERS[service], delivery, ports)
        else:
            ports.bus.ack(delivery, outcome="left out by benchmarks/scale.py")
    print(json.dumps({"outcome": str(outcome)}))


def has_ray_engine() -> bool:
    """Whether this checkout's `cashmatch match` offers `--engine` (another branch adds it)."""
    cli = Path(sys.executable).with_name("cashmatch")
    shown = subprocess.run(
        [str(cli), "match", "--help"], capture_output=True, text=True, check=False
    )
    return "--engine" in shown.stdout


def run_stage(stage: str, workspace: Path, warehouse: Path, month: str) -> dict | str:
    cli = str(Path(sys.executable).with_name("cashmatch"))
    where = ["--workspace", str(workspace), "--warehouse", str(warehouse)]
    out = ["--month", month, "--out", str(workspace / f"match-{stage}.csv")]
    if stage == "match":
        return timed([cli, *where, "match", *out])
    if stage == "match-ray":
        if not has_ray_engine():
            return "not available (no --engine)"
        return timed([cli, *where, "match", *out, "--engine", "ray"])
    return timed([sys.executable, __file__, "--stage", stage, "--month", month, *where])


def estimate_need(size: int, cached: bool) -> tuple[int, str]:
    stage = STAGE_BYTES_PER_MONTHLY_TRANSFER * size
    generation = 0 if cached else GENERATION_BYTES_PER_TRANSFER * size * MONTHS
    if generation > stage:
        return generation, f"generating {MONTHS} months"
    return stage, "the heaviest stage"


def measure(size: int, root: Path, console: Console, chosen: list[str]) -> dict:
    """The cycle of the 13th month (after a 12-month backfill) at `size` transfers a month."""
    cached = (cache_dir() / f"{warehouse_key(size)}.duckdb").exists()
    need, what = estimate_need(size, cached)
    free = available_bytes()
    if need > free:
        return {
            "skipped": f"{what} needs ~{need / 2**30:.0f} GiB, {free / 2**30:.0f} GiB free",
        }
    from cashmatch.bootstrap import bootstrap
    from cashmatch.domain.events import MonthClosed, make_event
    from cashmatch.service_layer.publishing import publish_event
    from cashmatch.settings import load_settings

    warehouse, gen_seconds = generate_warehouse(size, console)
    workspace = root / f"size-{size}"
    ports = bootstrap(load_settings(workspace=workspace, warehouse=str(warehouse)))
    bounds = ports.warehouse.month_bounds()
    assert bounds is not None
    from cashmatch.domain.dataset.split import months_between

    months = months_between(*bounds)
    stages: dict[str, dict | str] = {}
    for month in months[-2:]:  # the backfill close, then the measured one
        publish_event(ports.bus, make_event(MonthClosed(month=month), source="/bench"))
        backfill = month != months[-1]
        # The backfill close runs the whole chain (the measured month's evaluator and monitor
        # need a champion) unless --stages leaves those out: then its collector alone.
        for stage in STAGES:
            if backfill:
                wanted = stage in HANDLED and (stage == "collector" or chosen == STAGES)
            else:
                wanted = stage in chosen
            if not wanted:
                continue
            got = run_stage(stage, workspace, warehouse, month)
            stages["backfill" if backfill and stage == "collector" else stage] = got
            shown = (
                got
                if isinstance(got, str)
                else (f"{got['seconds']:.1f} s, {got['peak_mb']:.0f} MB — {got['outcome'][:50]}")
            )
            console.print(f"  {size:,} {month} {stage}: {shown}")
    return {"generation_seconds": gen_seconds, "stages": stages}


def cell(got: dict | str | None) -> str:
    if not isinstance(got, dict):
        return "n/a"
    return f"{got['seconds']:.1f} / {got['peak_mb']:,.0f}"


def growth(results: dict[int, dict], key: str) -> list[str]:
    """Per size step: (time ratio / size ratio) and (RSS ratio / size ratio)."""
    sizes = [s for s, r in results.items() if "stages" in r]
    out = []
    for a, b in itertools.pairwise(sizes):
        ra, rb = results[a]["stages"].get(key), results[b]["stages"].get(key)
        if isinstance(ra, dict) and isinstance(rb, dict):
            k = b / a
            t = rb["seconds"] / max(ra["seconds"], 1e-9) / k
            m = rb["peak_mb"] / max(ra["peak_mb"], 1e-9) / k
            out.append(f"{t:.2f} / {m:.2f}")
        else:
            out.append("n/a")
    return out


def short(size: int) -> str:
    """10000 → "10k", 1000000 → "1M", 1500 → "1.5k"."""
    for unit, div in (("M", 1_000_000), ("k", 1_000)):
        if size >= div:
            return f"{size / div:g}{unit}"
    return str(size)


def print_tables(results: dict[int, dict], console: Console) -> None:
    sizes = list(results)
    table = Table(title="13th month's cycle: seconds / peak RSS MB per stage")
    table.add_column("stage")
    for size in sizes:
        table.add_column(f"{size:,}/month", justify="right")
    for stage in ROWS:
        table.add_row(
            stage,
            *[
                "skipped" if "skipped" in results[s] else cell(results[s]["stages"].get(stage))
                for s in sizes
            ],
        )
    for size in sizes:
        if "skipped" in results[size]:
            console.print(f"{size:,}/month skipped: {results[size]['skipped']}")
    console.print(table)
    measured = [s for s in sizes if "stages" in results[s]]
    if len(measured) < 2:
        return
    steps = [f"{short(a)}→{short(b)}" for a, b in itertools.pairwise(measured)]
    ratios = Table(title="growth ÷ size ratio (time / peak RSS; 1.00 = linear)")
    ratios.add_column("stage")
    for step in steps:
        ratios.add_column(step, justify="right")
    for stage in ROWS:
        ratios.add_row(stage, *growth(results, stage))
    console.print(ratios)


def main() -> None:
    """Measure each size and print the tables (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--stages", nargs="+", choices=STAGES, default=STAGES, help="measure only these"
    )
    parser.add_argument("--stage", choices=HANDLED)
    parser.add_argument("--month")
    parser.add_argument("--workspace", type=Path)
    parser.add_argument("--warehouse", type=Path)
    args = parser.parse_args()
    if args.stage:
        stage_main(args.stage, args.workspace, args.warehouse, args.month)
        return
    console = Console(stderr=args.json, width=80)
    results: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="cashmatch-scale-") as tmp:
        for size in args.sizes:
            results[size] = measure(size, Path(tmp), console, args.stages)
    if args.json:
        print(json.dumps({str(k): v for k, v in results.items()}, indent=2))
    else:
        print_tables(results, console)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(f"(the driver itself peaked at {own:.0f} MB)")


if __name__ == "__main__":
    main()
