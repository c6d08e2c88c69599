"""What each deployable carries: its member's environment against the whole workspace's.

    make bench-images          (or .venv/bin/python benchmarks/images.py [--runs 5] [--json])

For every workspace member, an environment synced with that member alone (`uv sync --locked
--no-dev --package cashmatch-<name>`, what its image runs) beside the baseline of before the
workspace: one environment with everything, whose entry point loaded every service's handlers
(today's `entrypoints/service_table.py` plus the entry point, in the development `.venv`).
Per member: distributions installed, size on disk, and the cold start's import of the entry
point (median wall time of fresh interpreters, after one warm-up; peak RSS), with ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: the repository root holds infra/
    sys.path.insert(0, str(ROOT))

from infra.checks.dependencies import sync_member  # noqa: E402

MEMBERS = ["collector", "trainer", "evaluator", "deployer", "monitor", "alerter", "matcher"]
# what the cold start imports: a Cloud Run service's functions-framework source, the matcher's
# Serve app (the RayService's import_path)
ENTRY = {
    name: f"import runpy; runpy.run_path({str(ROOT / 'services' / name / 'main.py')!r})"
    for name in MEMBERS[:-1]
}
ENTRY["matcher"] = "import cashmatch.entrypoints.matcher.app"
# the old layout: every service's handler table was imported by each entry point
EVERYTHING = "import cashmatch.entrypoints.service_table; "
MEASURE = (
    "import resource, time; t = time.perf_counter(); {code}; "
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
)


def size_mb(env: Path) -> float:
    total = 0
    for dirpath, _, files in os.walk(env):
        for f in files:
            path = Path(dirpath, f)
            if not path.is_symlink():
                total += path.stat().st_size
    return total / 2**20


def distributions(python: Path) -> int:
    code = "import importlib.metadata as m; print(len(list(m.distributions())))"
    return int(subprocess.run([python, "-c", code], capture_output=True, text=True).stdout)


def cold_import(python: Path, code: str, runs: int) -> tuple[float, float]:
    """(median seconds, median peak RSS MB) of importing `code` in fresh interpreters."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASHMATCH_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    results = []
    for i in range(runs + 1):
        out = subprocess.run(
            [python, "-c", MEASURE.format(code=code)],
            capture_output=True,
            text=True,
            cwd=tempfile.gettempdir(),
            env=env,
            check=True,
        ).stdout.split()
        if i:  # the first run warms the page cache
            results.append((float(out[0]), float(out[1]) / 1024))
    return statistics.median(r[0] for r in results), statistics.median(r[1] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="rows as JSON on stdout")
    args = parser.parse_args()
    baseline_python = ROOT / ".venv" / "bin" / "python"
    base_size = size_mb(ROOT / ".venv")
    base_dists = distributions(baseline_python)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cashmatch-images-") as tmp:
        for name in MEMBERS:
            started = time.perf_counter()
            env = Path(tmp) / name
            python = sync_member(name, env)
            seconds, rss = cold_import(python, ENTRY[name], args.runs)
            everything = ENTRY[name] if name == "matcher" else EVERYTHING + ENTRY[name]
            base_seconds, base_rss = cold_import(baseline_python, everything, args.runs)
            rows.append(
                {
                    "member": name,
                    "distributions": distributions(python),
                    "baseline_distributions": base_dists,
                    "size_mb": round(size_mb(env), 1),
                    "baseline_size_mb": round(base_size, 1),
                    "import_s": round(seconds, 3),
                    "baseline_import_s": round(base_seconds, 3),
                    "import_rss_mb": round(rss, 1),
                    "baseline_import_rss_mb": round(base_rss, 1),
                    "sync_s": round(time.perf_counter() - started, 1),
                }
            )
            sys.stderr.write(f"  {name}: measured\n")
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    sys.stdout.write(
        f"each member's environment vs the whole workspace's ({base_dists} distributions, "
        f"{base_size:,.0f} MB); import = cold start of the entry point, median of {args.runs}\n\n"
    )
    header = f"{'member':<10} {'dists':>5} {'MB':>6} {'× all':>6} {'import s':>8} {'× all':>6} "
    sys.stdout.write(header + f"{'RSS MB':>7} {'× all':>6}\n")
    for r in rows:
        sys.stdout.write(
            f"{r['member']:<10} {r['distributions']:>5} {r['size_mb']:>6,.0f} "
            f"{r['size_mb'] / r['baseline_size_mb']:>6.2f} {r['import_s']:>8.2f} "
            f"{r['import_s'] / r['baseline_import_s']:>6.2f} {r['import_rss_mb']:>7.0f} "
            f"{r['import_rss_mb'] / r['baseline_import_rss_mb']:>6.2f}\n"
        )


if __name__ == "__main__":
    main()
