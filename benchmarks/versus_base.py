"""Matcher speed of this checkout against a base commit, side by side in one run.

The base commit is checked out as a detached git worktree in a temporary directory; each side
runs in its own subprocess with its own `shared/src` first on the path (same virtualenv), trains
its own model on the same small synthetic months (the features may differ between the two),
then measures:

- one in-process match: a transfer and 50 open invoices as JSON, validated, matched and the
  answer serialized, as the service's HTTP path does besides HTTP (median over 40 bodies,
  repeated);
- batch prediction: `predict` over one synthetic month (~1.5k transfers, history given).

Sides alternate (base, this, base, this, ...) and each figure is the best round of a side, so a
busy machine slows both alike. Prints a table with ratios (this / base) and each side's peak
RSS.

`--quality PROFILE` instead compares quality on one data set that this checkout's simulator
makes (`--structured` share of structured titles): both sides train on the first 12 of 14
months and score the last two as benchmarks/quality.py does, so the base reads the same titles
without knowing their structure.

    .venv/bin/python benchmarks/versus_base.py [--base REF] [--rounds 2]
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
def _bodies(month, count: int = 40, n_invoices: int = 50) -> list[bytes]:
    """Single requests: a transfer, its labelled invoices and the nearest others by amount
    (as benchmarks/serving/workload.py builds them)."""
    from cashmatch.domain.match_api import json_records

    transfers = json_records(month.transfers)
    invoices = month.invoices.reset_index(drop=True)
    records = json_records(invoices)
    paid = month.matches.groupby("transfer_id")["invoice_id"].agg(list).to_dict()
    bodies = []
    for transfer in transfers[:count]:
        own = set(paid.get(transfer["transfer_id"], []))
        distance = (invoices["open_amount"] - transfer["amount"]).abs()
        order = [i for i in distance.sort_values().index if invoices.at[i, "invoice_id"] not in own]
        chosen = [i for i in invoices.index if invoices.at[i, "invoice_id"] in own]
        chosen += order[: n_invoices - len(chosen)]
        body = {"transfer": transfer, "open_invoices": [records[i] for i in chosen]}
        bodies.append(json.dumps(body).encode())
    return bodies


def _single_ms(model, bodies: list[bytes], repeats: int) -> float:
    """Median milliseconds of one request: validate the JSON, match, serialize the answer."""
    # The service's own steps (service_layer.matcher), without its registry and loading.
    from cashmatch.domain.match_api import MatchRequest, MatchResponse
    from cashmatch.service_layer import matcher as svc

    def one(body: bytes) -> None:
        request = MatchRequest.model_validate_json(body)
        answers = model.answers(
            svc._transfer_columns([request.transfer]), svc._invoice_columns(request.open_invoices)
        )
        (result,) = svc._results(answers, svc.DEFAULT_MAX_CANDIDATES)
        MatchResponse(model_version="bench", **dict(result)).model_dump_json()

    for body in bodies:  # warm-up: first-call caches
        one(body)
    times = []
    for _ in range(repeats):
        for body in bodies:
            started = time.perf_counter()
            one(body)
            times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def worker() -> None:
    """Train, measure, print one JSON line (run with this side's code first on the path)."""
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
    single = _single_ms(model, bodies, repeats=5)
    model.predict(month.transfers, month.invoices, history=months[:-1])  # warm-up
    batch = []
    for _ in range(3):
        started = time.perf_counter()
        model.predict(month.transfers, month.invoices, history=months[:-1])
        batch.append(time.perf_counter() - started)
    print(
        json.dumps(
            {
                "code": str(Path(cashmatch.__file__).resolve().parents[2]),
                "single_ms": single,
                "batch_s": min(batch),
                "batch_transfers": len(month.transfers),
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


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


def _run_side(src: Path, *extra: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONHASHSEED": "0"}
    out = subprocess.run(
        [sys.executable, __file__, "--worker", *extra],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if Path(result["code"]) != src.parent:
        raise RuntimeError(f"the worker ran {result['code']}, not {src.parent}")
    return result


def main() -> None:
    """Check out the base, run both sides alternately, print the table."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--base", default=None, help="base commit (default: merge-base with main)")
    ap.add_argument("--rounds", type=int, default=2)
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

    runs: dict[str, list[dict]] = {"base": [], "this": []}
    for _ in range(args.rounds):
        runs["base"].append(_run_side(tree / "shared" / "src"))
        runs["this"].append(_run_side(ROOT / "shared" / "src"))
    best = {
        side: {
            "single_ms": min(r["single_ms"] for r in rs),
            "batch_s": min(r["batch_s"] for r in rs),
            "peak_mb": max(r["peak_mb"] for r in rs),
        }
        for side, rs in runs.items()
    }
    n = runs["this"][0]["batch_transfers"]
    table = Table(title=f"this checkout vs {base[:10]} (best of {args.rounds} rounds)")
    for column in ("measure", "base", "this", "ratio"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    rows = [
        ("1 transfer x 50 invoices, ms", "single_ms", "{:.2f}"),
        (f"predict {n} transfers, s", "batch_s", "{:.2f}"),
        ("peak RSS of a side, MB", "peak_mb", "{:.0f}"),
    ]
    for label, key, fmt in rows:
        a, b = best["base"][key], best["this"][key]
        table.add_row(label, fmt.format(a), fmt.format(b), f"{b / a:.2f}x")
    Console(width=80).print(table)


if __name__ == "__main__":
    main()
