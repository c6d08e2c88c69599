"""Speed at scale: for each size, synthesize, train and predict, each in a fresh process.

For each size (transfers a month) the simulator makes warm-up months, the training months and
one month to predict; training and predicting then run as separate child processes (see
steps), so the seconds and peak memory printed are each step's own. The load average before
and after is printed because the machine's other work shows in every number.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from benchmarks.matcher_quality.speed_tables import (
    Results,
    predict_table,
    targets_table,
    train_table,
)

# The script a step runs in (see its --step and --dir flags).
ENTRY_SCRIPT = Path(__file__).resolve().parents[1] / "quality.py"


def run_step(step: str, folder: Path) -> dict:
    """Run one step in a fresh process; its report (seconds, peak MB, ...) as a dict."""
    done = subprocess.run(
        [sys.executable, str(ENTRY_SCRIPT), "--step", step, "--dir", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"step {step} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _measure_size(args: argparse.Namespace, console: Console, folder: Path, size: int) -> tuple:
    """Synthesize, train and predict one size in fresh processes; (size, synth, train, predict)."""
    job = {
        "size": size,
        "train_months": args.train_months,
        "seed": args.seed,
        "profile": args.profile,
        "invoices_per_transfer": args.invoices_per_transfer,
    }
    (folder / "job.json").write_text(json.dumps(job))
    synth = run_step("synth", folder)
    console.print(
        f"{size:,}/month: synthesized {args.train_months} training months "
        f"({synth['train_transfers']:,} transfers) and one to predict "
        f"({synth['test_transfers']:,} transfers) in {synth['seconds']:.0f} s"
    )
    train = run_step("train", folder)
    console.print(f"  train {train['seconds']:.1f} s, {train['peak_mb']:.0f} MB")
    predict = run_step("predict", folder)
    console.print(f"  predict {predict['seconds']:.1f} s, {predict['peak_mb']:.0f} MB")
    return size, synth, train, predict


def scale(args: argparse.Namespace, console: Console) -> None:
    """Speed mode: synthesize, train and predict each size in fresh processes; print tables."""
    results: Results = []
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    with tempfile.TemporaryDirectory(prefix="cashmatch-quality-scale-") as tmp:
        for size in args.sizes:
            folder = Path(tmp) / f"size-{size}"
            folder.mkdir()
            results.append(_measure_size(args, console, folder, size))
            # Removed once measured, so at most one size's months and model are on disk.
            for f in folder.iterdir():
                f.unlink()
    load_end = Path("/proc/loadavg").read_text().split()[:3] if load else []
    console.print(train_table(results, args.train_months))
    console.print(predict_table(results))
    if results[-1][0] >= 100_000:
        console.print(targets_table(results))
    else:
        console.print("targets are judged at 100,000 transfers a month: not measured")
    if load:
        console.print(
            f"load average (1/5/15 min) at start {' '.join(load)}, end {' '.join(load_end)}"
        )
