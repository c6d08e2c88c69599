"""Quality benchmark of the matcher against the rules baseline, and its speed at scale.

Quality: synthesizes data, trains on all months but the last two, scores the last two and prints
a table.

    .venv/bin/python benchmarks/quality.py [--profile default|messy] [--size-factor F] [--seed S]

`--source toy` uses the matcher's own small generator instead of the project simulator.

Worlds (`--worlds`, what `make bench-quality` runs): trains on one world and scores it, the
other profile and worlds the habit randomizer drew (benchmarks/matcher_quality/worlds.py);
prints a table per world and per kind of transfer, or JSON with --json.

    .venv/bin/python benchmarks/quality.py --worlds [--habit-seeds 1 2 3] [--json]

Speed (`--scale`): for each size (transfers a month, default 10k, 30k, 100k) the simulator makes
warm-up months, 12 training months and one month to predict; training on the 12 months and
predicting the last one (against 1.5 open invoices per transfer) each run in a fresh process, so
wall time and peak memory (ru_maxrss) are that step's own. Prints seconds per stage, peak MB,
the growth factor between sizes and whether the targets at 100k are met.

    .venv/bin/python benchmarks/quality.py --scale [--sizes 10000 30000 100000]
"""

# The parts live in benchmarks/matcher_quality/ (its __init__ lists them); the speed mode runs
# each step as this script again, with --step and --dir.

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Run as a file, Python puts benchmarks/ first on the path, not the repository: the parts are
# imported as `benchmarks.matcher_quality`, as they would be under -m.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console

from benchmarks.matcher_quality.speed import scale
from benchmarks.matcher_quality.steps import STEPS, step_main
from benchmarks.matcher_quality.versus_rules import quality
from benchmarks.matcher_quality.worlds import worlds


def main() -> None:
    """Run the quality benchmark, or the speed mode with --scale."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--profile", default="default")
    ap.add_argument("--size-factor", type=float, default=1.0, help="multiplies the data size")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--months", type=int, default=14, help="12 to train on, 2 to score")
    ap.add_argument("--source", choices=["synth", "toy"], default="synth")
    ap.add_argument("--shift-from", default=None, help="YYYY-MM from which payment habits drift")
    ap.add_argument(
        "--structured",
        type=float,
        default=None,
        help="share of counterparties writing structured titles (RF references, SEPA tags)",
    )
    ap.add_argument("--patterns", action="store_true", help="exact-set accuracy per noise pattern")
    ap.add_argument("--worlds", action="store_true", help="train on one world, score several")
    ap.add_argument("--habit-seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--test-months", type=int, default=8, help="months of each test world")
    ap.add_argument("--json", action="store_true", help="--worlds: one JSON object")
    ap.add_argument("--scale", action="store_true", help="speed mode instead of the quality table")
    ap.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000], help="transfers a month"
    )
    ap.add_argument("--train-months", type=int, default=12)
    ap.add_argument("--invoices-per-transfer", type=float, default=1.5)
    ap.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        step_main(args.step, args.dir)
        return
    console = Console()
    if args.worlds:
        worlds(args, console)
    elif args.scale:
        scale(args, console)
    else:
        quality(args, console)


if __name__ == "__main__":
    main()
