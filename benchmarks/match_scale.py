"""Batch matching of one month: the whole month at once against chunk by chunk (this process)
and the Ray engine (chunks in parallel Ray tasks), seconds and peak memory of each, and whether
each wrote the whole month's CSV byte for byte.

    .venv/bin/python benchmarks/match_scale.py --sizes 100000
    .venv/bin/python benchmarks/match_scale.py --warehouse w.duckdb --month 2025-02

Each run is its own process (`cashmatch match` minus the registry: the model is a file); its
peak memory is the largest VmHWM of it and every process under it (Ray's workers included),
read from /proc. The model is a small one trained on toy data unless --model names a file
(`TrainedMatcher.to_bytes`): blocking and features, where the time goes, do not depend on it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

TRANSFERS_PER_SCALE = 1_500  # the simulator makes about this many transfers a month at scale 1
RUNS = [("whole", "local", 0), ("chunked", "local", 20_000), ("ray x2", "ray", 20_000)]


def tree_peak_mb(root_pid: int, stop: threading.Event, found: dict[int, int]) -> None:
    """Until `stop`: the VmHWM (peak RSS, kB) of `root_pid` and its descendants, per pid."""
    while not stop.is_set():
        parents: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                parents[int(stat.parent.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
        mine = {root_pid}
        grew = True
        while grew:
            more = {pid for pid, ppid in parents.items() if ppid in mine} - mine
            grew = bool(more)
            mine |= more
        for pid in mine:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        found[pid] = max(found.get(pid, 0), int(line.split()[1]))
            except OSError:
                continue
        stop.wait(0.25)


def run(args: list[str]) -> dict:
    """One run in a child process; its JSON line, and the peak of its process tree."""
    child = subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stop, found = threading.Event(), {}
    watcher = threading.Thread(target=tree_peak_mb, args=(child.pid, stop, found), daemon=True)
    watcher.start()
    out, err = child.communicate()
    stop.set()
    watcher.join()
    if child.returncode != 0:
        raise SystemExit(f"run {args} failed:\n{err.decode()[-2000:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["peak_mb"] = max(found.values(), default=0) / 1024
    return result


def run_main(engine: str, chunk: int, warehouse: Path, month: str, model: Path, out: Path) -> None:
    """Inside the child: match the month as `cashmatch match` does, write the CSV, report."""
    import contextlib

    from cashmatch.adapters.local.warehouse import DuckDBWarehouse
    from cashmatch.domain.matching import TrainedMatcher
    from cashmatch.service_layer.batch_matching import match_month, write_csv_atomically

    matcher = TrainedMatcher.from_bytes(model.read_bytes())
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        first_passes = None
        if engine == "ray":
            from cashmatch.adapters.ray_chunks import ray_engine

            first_passes = stack.enter_context(ray_engine(None, 2))
        predictions, _ = match_month(
            matcher,
            DuckDBWarehouse(warehouse),
            month,
            chunk=chunk or None,
            first_passes=first_passes,
        )
        write_csv_atomically(predictions, out)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "transfers": int(predictions["transfer_id"].nunique())}))


def small_model(path: Path) -> None:
    """A small model trained on toy data (what the tests use)."""
    from cashmatch.domain.matching import MatcherConfig, month_batches, train_matcher
    from cashmatch.domain.matching.toydata import toy_data

    d = toy_data(n_months=4, per_month=150, n_counterparties=50, seed=3)
    batches = month_batches(d.invoices, d.transfers, d.matches)
    path.write_bytes(train_matcher(batches, MatcherConfig(seed=0)).to_bytes())


def synthesized(size: int, folder: Path, console: Console) -> tuple[Path, str]:
    """A two-month warehouse of `size` transfers a month; the second month is matched."""
    from cashmatch.synth import SynthConfig, generate, write_warehouse

    warehouse = folder / f"w{size}.duckdb"
    t0 = time.perf_counter()
    data = generate(
        SynthConfig(months=2, start="2025-01", scale=size / TRANSFERS_PER_SCALE, seed=5)
    )
    write_warehouse(data, warehouse)
    console.print(f"{size:,}/month: synthesized in {time.perf_counter() - t0:.0f} s")
    return warehouse, "2025-02"


def measure(warehouse: Path, month: str, model: Path, folder: Path) -> list[dict]:
    """Every run of RUNS on one month."""
    rows = []
    for name, engine, chunk in RUNS:
        out = folder / f"{name.replace(' ', '-')}.csv"
        result = run(
            [
                "--run",
                engine,
                "--chunk",
                str(chunk),
                "--warehouse",
                str(warehouse),
                "--month",
                month,
                "--model",
                str(model),
                "--out",
                str(out),
            ]
        )
        result.update(name=name, chunk=chunk, digest=hashlib.sha256(out.read_bytes()).hexdigest())
        rows.append(result)
    return rows


def table(rows: list[dict], title: str) -> Table:
    """Seconds and peak memory of each run beside the whole month's, ratios, same CSV."""
    base = rows[0]
    t = Table(title=title)
    for column in ("run", "chunk", "s", "x whole", "peak MB", "x whole", "same CSV"):
        t.add_column(column, justify="left" if column == "run" else "right")
    for r in rows:
        t.add_row(
            r["name"],
            f"{r['chunk']:,}" if r["chunk"] else "month",
            f"{r['seconds']:.1f}",
            f"{r['seconds'] / base['seconds']:.2f}",
            f"{r['peak_mb']:,.0f}",
            f"{r['peak_mb'] / base['peak_mb']:.2f}",
            "yes" if r["digest"] == base["digest"] else "NO",
        )
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--warehouse", type=Path, help="match this warehouse instead")
    parser.add_argument("--month", default="2025-02")
    parser.add_argument("--model", type=Path)
    parser.add_argument("--run", choices=["local", "ray"])
    parser.add_argument("--chunk", type=int, default=0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--json", action="store_true", help="the rows as JSON")
    args = parser.parse_args()
    if args.run:
        run_main(args.run, args.chunk, args.warehouse, args.month, args.model, args.out)
        return
    console = Console(width=80)
    with tempfile.TemporaryDirectory(prefix="cashmatch-match-scale-") as tmp:
        folder = Path(tmp)
        model = args.model or folder / "model.zip"
        if args.model is None:
            small_model(model)
        worlds = (
            [(args.warehouse, args.month, "given")]
            if args.warehouse
            else [(*synthesized(n, folder, console), f"{n:,}/month") for n in args.sizes]
        )
        for warehouse, month, label in worlds:
            rows = measure(warehouse, month, model, folder)
            if args.json:
                print(json.dumps({"world": label, "month": month, "rows": rows}))
            else:
                console.print(table(rows, f"matching {month} ({label})"))


if __name__ == "__main__":
    main()
