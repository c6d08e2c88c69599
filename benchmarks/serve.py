"""Serving benchmark: real HTTP on 127.0.0.1, printed tables (not a timed test).

    .venv/bin/python benchmarks/serve.py [--quick] [--seconds 6]

In one run, on one machine, the same model behind four paths:
  (a) a no-op Ray Serve deployment (the price of Serve's proxy hop alone),
  (a2) the matcher's own ingress (parsing, validation, answer) over a backend without a model,
  (b) the matcher on Ray Serve (LocalRayServing, the app of cashmatch.entrypoints.matcher),
  (c) the same FastAPI app and model under plain uvicorn (one process, no Ray),
  (d) the matcher called in-process (no HTTP at all).
Measured: requests/s and p50/p99 latency of single matches (50 open invoices) at concurrency
1, 16 and 64; transfers matched per second in batch requests; failed requests and the moment
the new version answers while a model is swapped under steady load, both through a config
update (in place) and through `serve.run` (replicas replaced); memory of every Ray process.
Where the CPU goes: for each single-match row, the CPU milliseconds per answered request of the
client, Serve's proxy, the replicas, the uvicorn server and the rest of Ray (from /proc), and
how busy the two cores were; and (d) once more with the floor's p50 of idle before each request,
which is what a replica's model sees at concurrency 1 (the cores were busy elsewhere meanwhile).

The load generator is Python (httpx, asyncio) on the same 2 cores as the servers, so absolute
numbers understate what a separate client would see; the comparison between paths holds.
Every loop is bounded by a deadline and a count; nothing leaves 127.0.0.1.

The parts live in benchmarks/serving/ (its __init__ lists them). This script also starts (c)
in a child process: `serve.py --plain-server PORT BLOB_ROOT VERSION`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Run as a file, Python puts benchmarks/ first on the path, not the repository: the parts are
# imported as `benchmarks.serving`, the name benchmarks/faults.py (run with -m) uses too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.serving.run import run_all
from benchmarks.serving.servers import plain_server


def main() -> None:
    """Run everything once and print the tables, or be the plain server (c)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, small batch only")
    parser.add_argument("--seconds", type=float, default=6.0, help="per load level")
    parser.add_argument(
        "--override",
        type=float,
        metavar="THRESHOLD",
        help="serve (b) and (d) at this guardrail threshold: it must not move the overhead",
    )
    parser.add_argument("--plain-server", nargs=3, metavar=("PORT", "BLOB_ROOT", "VERSION"))
    options = parser.parse_args()
    if options.plain_server:
        port, blob_root, version = options.plain_server
        plain_server(int(port), blob_root, version)
        return
    run_all(options.quick, options.seconds, options.override)


if __name__ == "__main__":
    main()
