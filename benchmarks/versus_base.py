"""Matcher speed of this checkout against a base commit, side by side in one run.

The base commit is checked out as a detached git worktree in a temporary directory; each side
runs in its own subprocess with its own `shared/src` first on the path (same virtualenv), trains
its own model on the same small synthetic months (the features may differ between the two),
then measures:

- one in-process match: a transfer and 50 open invoices as JSON, validated, matched and the
  answer serialized, as the service's HTTP path does besides HTTP (median over 40 bodies,
  repeated);
- batch prediction: `predict` over one synthetic month (~1.5k transfers, history given).

Both workers stay up after training and are asked for one slice at a time, alternately (base,
this, base, this, ...; a slice is the 40 single bodies once, or one predict), and each figure is
a side's best slice, so a machine whose load changes slows both alike. Prints a table with
ratios (this / base) and each side's peak RSS.

`--quality PROFILE` instead compares quality on one data set that this checkout's simulator
makes (`--structured` share of structured titles): both sides train on the first 12 of 14
months and score the last two as benchmarks/quality.py does, so the base reads the same titles
without knowing their structure.

    .venv/bin/python benchmarks/versus_base.py [--base REF] [--rounds 15]
    .venv/bin/python benchmarks/versus_base.py --quality messy --structured 0.3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- worker side
def _bodies(month) -> list[bytes]:
    """The serving benchmark's single requests (benchmarks/serving/workload.py), built by this
    checkout's code on either side: only `shared/src` differs between the two."""
    if str(ROOT) not in sys.path:
        sys.path.append(str(ROOT))  # after the side's own shared/src, which must win
    from benchmarks.serving.workload import single_bodies

    return single_bodies(month)


def _single_ms(model, bodies: list[bytes]) -> float:
    """Median milliseconds of one request over `bodies`: validate the JSON, match, serialize."""
    # The service's own steps (service_layer.matcher), without its registry and loading.
    from cashmatch.domain.match_api import MatchRequest, MatchResponse
    from cashmatch.service_layer import matcher as svc

    times = []
    for body in bodies:
        started = time.perf_counter()
        request = MatchRequest.model_validate_json(body)
        answers = model.answers(
            svc._transfer_columns([request.transfer]), svc._invoice_columns(request.open_invoices)
        )
        (result,) = svc._results(answers, svc.DEFAULT_MAX_CANDIDATES)
        MatchResponse(model_version="bench", **dict(result)).model_dump_json()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def worker() -> None:
    """Train, then answer the driver's commands on stdin, one JSON line each: "single" (one
    slice of single matches), "batch" (one month's predict), "done" (peak RSS)."""
    import gc

    import cashmatch
    from cashmatch.domain.matching import month_batches, train_matcher
    from cashmatch.synth import SynthConfig, generate

    small = generate(SynthConfig(months=4, scale=0.2, seed=5))
    batches = month_batches(small.invoices, small.transfers, small.matches)
    model = train_matcher(batches)
    bodies = _bodies(batches[-1])
    big = generate(SynthConfig(months=4, scale=1.0, seed=9))
    months = month_batches(big.invoices, big.transfers, big.matches)
    month = months[-1]
    gc.collect()
    gc.freeze()
    _single_ms(model, bodies)  # warm-up: first-call caches
    model.predict(month.transfers, month.invoices, history=months[:-1])

    def say(**values) -> None:
        print(json.dumps(values), flush=True)

    say(code=str(Path(cashmatch.__file__).resolve().parents[2]), n=len(month.transfers))
    for line in sys.stdin:
        command = line.strip()
        if command == "single":
            say(value=_single_ms(model, bodies))
        elif command == "batch":
            started = time.perf_counter()
            model.predict(month.transfers, month.invoices, history=months[:-1])
            say(value=time.perf_counter() - started)
        else:
            say(value=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            return


_QUALITY_ROWS = [
    ("auto_rate@99", "auto_rate@99"),
    ("own auto precision", "auto_decision_precision"),
    ("own auto coverage", "auto_decision_rate"),
    ("exact-set accuracy", "exact_set_accuracy"),
    ("multi-invoice exact", "multi_exact_set_accuracy"),
    ("no-invoice exact", "none_exact_set_accuracy"),
    ("pair F1", "pair_f1"),
    ("top-1 accuracy", "top1_accuracy"),
]


def quality_worker(data_dir: Path) -> None:
    """Train on all months of the saved data but the last two, score those, print JSON."""
    import pandas as pd

    import cashmatch
    from cashmatch.domain.matching import evaluate, month_batches, train_matcher

    frames = {n: pd.read_parquet(data_dir / f"{n}.parquet") for n in ("inv", "tr", "mt")}
    batches = [
        b for b in month_batches(frames["inv"], frames["tr"], frames["mt"]) if len(b.transfers)
    ]
    train, test = batches[:-2], batches[-2:]
    model = train_matcher(train)
    preds, history = [], list(train)
    for b in test:
        preds.append(model.predict(b.transfers, b.invoices, history=history))
        history.append(b)
    m = evaluate(
        pd.concat(preds, ignore_index=True),
        pd.concat([b.transfers for b in test], ignore_index=True),
        pd.concat([b.matches for b in test], ignore_index=True),
    )
    out = {key: float(m[key]) for _, key in _QUALITY_ROWS}
    out["code"] = str(Path(cashmatch.__file__).resolve().parents[2])
    print(json.dumps(out))


# --------------------------------------------------------------------------- driver side
def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


def _env(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src), "PYTHONHASHSEED": "0"}


def _run_side(src: Path, *extra: str) -> dict:
    """One worker run to its end (the quality mode): its last JSON line."""
    out = subprocess.run(
        [sys.executable, __file__, "--worker", *extra],
        cwd=ROOT,
        env=_env(src),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    _check_code(result, src)
    return result


def _check_code(result: dict, src: Path) -> None:
    if Path(result["code"]) != src.parent:
        raise RuntimeError(f"the worker ran {result['code']}, not {src.parent}")


class _Side:
    """A speed worker kept running, asked for one measurement at a time."""

    def __init__(self, src: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker"],
            cwd=ROOT,
            env=_env(src),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.src = src

    def ready(self) -> dict:
        hello = self._read()
        _check_code(hello, self.src)
        return hello

    def ask(self, command: str) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return float(self._read()["value"])

    def _read(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the worker of {self.src} ended early (rc {self.proc.wait()})")
        return json.loads(line)


def main() -> None:
    """Check out the base, run both sides alternately, print the table."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--base", default=None, help="base commit (default: merge-base with main)")
    ap.add_argument("--rounds", type=int, default=15, help="interleaved slices per side")
    ap.add_argument("--quality", default=None, help="compare quality on this profile instead")
    ap.add_argument("--structured", type=float, default=0.0, help="with --quality")
    ap.add_argument("--seed", type=int, default=7, help="with --quality")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        quality_worker(args.data) if args.data else worker()
        return
    base = args.base or _git("merge-base", "HEAD", "main")
    with tempfile.TemporaryDirectory(prefix="cashmatch-base-") as tmp:
        tree = Path(tmp) / "base"
        _git("worktree", "add", "--detach", str(tree), base)
        try:
            if args.quality:
                _quality(args, base, tree, Path(tmp))
            else:
                _speed(args, base, tree)
        finally:
            _git("worktree", "remove", "--force", str(tree))


def _quality(args: argparse.Namespace, base: str, tree: Path, tmp: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from cashmatch.synth import SynthConfig, generate

    data = generate(
        SynthConfig(months=14, profile=args.quality, seed=args.seed, structured=args.structured)
    )
    data.invoices.to_parquet(tmp / "inv.parquet")
    data.transfers.to_parquet(tmp / "tr.parquet")
    data.matches.to_parquet(tmp / "mt.parquet")
    sides = {
        "base": _run_side(tree / "shared" / "src", "--data", str(tmp)),
        "this": _run_side(ROOT / "shared" / "src", "--data", str(tmp)),
    }
    table = Table(
        title=f"{args.quality}, structured {args.structured}: this vs {base[:10]}, last 2 months"
    )
    for column in ("metric", "base", "this", "change"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for label, key in _QUALITY_ROWS:
        a, b = sides["base"][key], sides["this"][key]
        table.add_row(label, f"{a:.4f}", f"{b:.4f}", f"{b - a:+.4f}")
    Console(width=80).print(table)


def _speed(args: argparse.Namespace, base: str, tree: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    sides = {"base": _Side(tree / "shared" / "src"), "this": _Side(ROOT / "shared" / "src")}
    n = [side.ready() for side in sides.values()][-1]["n"]
    # Measurements alternate between the sides, slice by slice: a machine whose load changes
    # from minute to minute slows both alike; each side's figure is its best slice.
    got: dict[str, dict[str, list[float]]] = {k: {"single": [], "batch": []} for k in sides}
    for _ in range(args.rounds):
        for command in ("single", "batch"):
            for name, side in sides.items():
                got[name][command].append(side.ask(command))
    peak = {name: side.ask("done") for name, side in sides.items()}
    for side in sides.values():
        side.proc.wait()
    table = Table(title=f"this checkout vs {base[:10]} (best of {args.rounds} interleaved slices)")
    for column in ("measure", "base", "this", "ratio"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    rows = [
        ("1 transfer x 50 invoices, ms", min(got["base"]["single"]), min(got["this"]["single"])),
        (f"predict {n} transfers, s", min(got["base"]["batch"]), min(got["this"]["batch"])),
        ("peak RSS of a side, MB", peak["base"], peak["this"]),
    ]
    for label, a, b in rows:
        fmt = "{:.0f}" if "MB" in label else "{:.2f}"
        table.add_row(label, fmt.format(a), fmt.format(b), f"{b / a:.2f}x")
    Console(width=80).print(table)


if __name__ == "__main__":
    main()
