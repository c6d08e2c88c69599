"""Quality benchmark of the matcher against the rules baseline, and its speed at scale.

Quality: synthesizes data, trains on all months but the last two, scores the last two and prints
a table.

    .venv/bin/python benchmarks/quality.py [--profile default|messy] [--size-factor F] [--seed S]

`--source toy` uses the matcher's own small generator instead of the project simulator.

Speed (`--scale`): for each size (transfers a month, default 10k, 30k, 100k) the simulator makes
warm-up months, 12 training months and one month to predict; training on the 12 months and
predicting the last one (against 1.5 open invoices per transfer) each run in a fresh process, so
wall time and peak memory (ru_maxrss) are that step's own. Prints seconds per stage, peak MB,
the growth factor between sizes and whether the targets at 100k are met.

    .venv/bin/python benchmarks/quality.py --scale [--sizes 10000 30000 100000]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pandas as pd
from rich.console import Console
from rich.table import Table

from cashmatch.domain.matching import (
    MatcherConfig,
    MonthBatch,
    TrainedMatcher,
    evaluate,
    month_batches,
    rules_baseline,
    train_matcher,
)
from cashmatch.domain.matching.candidates import candidate_pairs
from cashmatch.domain.matching.knowledge import combine, observations, payer_map
from cashmatch.domain.matching.metrics import per_transfer
from cashmatch.domain.matching.prepared import prepare


def _config_kwargs(cls, wanted: dict) -> dict:
    fields = getattr(cls, "model_fields", None) or getattr(cls, "__dataclass_fields__", None)
    if fields is None:
        fields = inspect.signature(cls).parameters
    return {k: v for k, v in wanted.items() if k in fields and v is not None}


def synthesize(
    source: str, profile: str, scale: float, seed: int, months: int, shift_from: str | None = None
):
    """(invoices, transfers, matches, notes) from the project simulator or the toy generator."""
    if source == "toy":
        from cashmatch.domain.matching.toydata import toy_data

        d = toy_data(
            n_months=months, per_month=int(150 * scale), n_counterparties=int(60 * scale), seed=seed
        )
        return d.invoices, d.transfers, d.matches, d.patterns
    from cashmatch.synth import SynthConfig, generate

    kwargs = _config_kwargs(
        SynthConfig,
        {
            "profile": profile,
            "scale": scale,
            "seed": seed,
            "months": months,
            "shift_from": shift_from,
        },
    )
    data = generate(SynthConfig(**kwargs))
    notes = getattr(data, "truth_notes", None)
    return data.invoices, data.transfers, data.matches, notes


def candidate_recall(model, history, batch) -> float:
    """Share of the true pairs of `batch` that reach scoring, with the knowledge predict uses."""
    obs = combine([model.observations, *(observations(b) for b in history)])
    p = prepare(batch.transfers, batch.invoices)
    pairs = candidate_pairs(p, payer_map(obs), model.config.blocking())
    t_ids = p.t_ids
    i_ids = p.i_ids
    found = set(zip(t_ids[pairs["t"]], i_ids[pairs["i"]], strict=True))
    lab = batch.matches
    true = set(zip(lab["transfer_id"].astype(str), lab["invoice_id"].astype(str), strict=True))
    return len(true & found) / len(true) if true else 1.0


def quality(args: argparse.Namespace, console: Console) -> None:
    """Train on all months but the last two, score those and print the table."""
    inv, tr, mt, notes = synthesize(
        args.source, args.profile, args.size_factor, args.seed, args.months, args.shift_from
    )
    batches = [b for b in month_batches(inv, tr, mt) if len(b.transfers)]
    train, test = batches[:-2], batches[-2:]
    console.print(
        f"{args.source}/{args.profile} size factor {args.size_factor}: {len(batches)} months, "
        f"{len(tr)} transfers, {len(inv)} invoices; train {len(train)} months, test {len(test)}"
    )
    t0 = time.perf_counter()
    model = train_matcher(train, MatcherConfig())
    train_s = time.perf_counter() - t0

    preds, bases, recalls, predict_s = [], [], [], 0.0
    history = list(train)
    for b in test:
        t0 = time.perf_counter()
        preds.append(model.predict(b.transfers, b.invoices, history=history))
        predict_s += time.perf_counter() - t0
        bases.append(rules_baseline(b.transfers, b.invoices))
        recalls.append((candidate_recall(model, history, b), len(b.matches)))
        history.append(b)  # the month is labelled (closed) before the next one is scored
    test_tr = pd.concat([b.transfers for b in test], ignore_index=True)
    test_mt = pd.concat([b.matches for b in test], ignore_index=True)
    m = evaluate(pd.concat(preds, ignore_index=True), test_tr, test_mt)
    r = evaluate(pd.concat(bases, ignore_index=True), test_tr, test_mt)
    recall = sum(x * n for x, n in recalls) / max(1, sum(n for _, n in recalls))

    table = Table(title=f"matcher vs rules - last 2 months ({len(test_tr)} transfers)")
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column("rules", justify="right")
    rows = [
        ("auto_rate@99", "auto_rate@99"),
        ("own auto precision", "auto_decision_precision"),
        ("own auto coverage", "auto_decision_rate"),
        ("exact-set accuracy", "exact_set_accuracy"),
        ("multi-invoice exact", "multi_exact_set_accuracy"),
        ("no-invoice exact", "none_exact_set_accuracy"),
        ("pair F1", "pair_f1"),
        ("top-1 accuracy", "top1_accuracy"),
    ]
    for label, key in rows:
        table.add_row(label, f"{m[key]:.4f}", f"{r[key]:.4f}")
    table.add_row("candidate recall (test)", f"{recall:.4f}", "")
    table.add_row(
        "candidate recall (train)", f"{model.training_metrics['candidate_recall']:.4f}", ""
    )
    table.add_row("threshold", f"{model.threshold:.4f}", "1.0")
    table.add_row("train seconds", f"{train_s:.1f}", "")
    table.add_row("predict seconds", f"{predict_s:.1f}", "")
    console.print(table)

    if args.patterns and notes is not None and len(notes):
        pt = per_transfer(pd.concat(preds, ignore_index=True), test_tr, test_mt)
        col = "pattern" if "pattern" in notes.columns else notes.columns[-1]
        pt = pt.merge(notes[["transfer_id", col]].astype(str), on="transfer_id", how="left")
        by = pt.groupby(col).agg(
            n=("exact", "size"), exact=("exact", "mean"), auto=("auto", "mean")
        )
        console.print(by.sort_values("exact").to_string())


# --- speed mode -------------------------------------------------------------------------------

TRANSFERS_PER_SCALE = 1_500  # the simulator makes about this many transfers a month at scale 1
WARMUP_MONTHS = 2  # the simulator's first months ramp up (about 37% and 74% of a full month)
TARGETS = {"predict_s": 120.0, "predict_mb": 4096.0, "train_s": 900.0}  # at 100k a month
TRAIN_STAGES = ["knowledge", "scoring", "pair_fits", "set_fits", "calibration"]
PREDICT_STAGES = ["prepare", "blocking", "features", "pair model", "set assembly"]
# Functions the predict stages are timed through, by the module of cashmatch.domain.matching
# that calls them (see stage_clock).
PREDICT_HOOKS: dict[str, dict[str, str]] = {
    "scoring": {
        "prepare": "prepare",
        "candidate_columns": "blocking",
        "pair_features": "features",
    },
    "settlement": {
        "pair_features": "features",
        "proba": "pair model",  # or "set assembly" when given set features, see _proba_stage
        "options": "set assembly",
        "settle_in_order": "set assembly",
    },
}


def peak_mb() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextlib.contextmanager
def stage_clock(hooks: dict[str, dict[str, str]]) -> Iterator[dict[str, float]]:
    """Seconds spent in each stage while the block runs, by wrapping the modules' functions.

    Only the outermost wrapped call is timed, so a stage calling another is not counted twice.
    A name a module no longer has is skipped: its time shows up as "other".
    """
    spent: dict[str, float] = defaultdict(float)
    active: list[bool] = []
    originals: list[tuple[ModuleType, str, str, Callable]] = []  # module, name, stage, function
    for short, stages in hooks.items():
        module = importlib.import_module(f"cashmatch.domain.matching.{short}")
        originals += [
            (module, name, stage, getattr(module, name))
            for name, stage in stages.items()
            if hasattr(module, name)
        ]

    def timed(fn: Callable, name: str, stage: str) -> Callable:
        def wrapper(*a, **kw):
            if active:
                return fn(*a, **kw)
            active.append(True)
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[_proba_stage(a) if name == "proba" else stage] += time.perf_counter() - t0
                active.pop()

        return wrapper

    for module, name, stage, fn in originals:
        setattr(module, name, timed(fn, name, stage))
    try:
        yield spent
    finally:
        for module, name, _, fn in originals:
            setattr(module, name, fn)


def _proba_stage(args: tuple) -> str:
    from cashmatch.domain.matching.features import FEATURES

    model = args[0] if args else None
    return (
        "pair model" if getattr(model, "n_features_in_", None) == len(FEATURES) else "set assembly"
    )


def _write_month(folder: Path, name: str, b: MonthBatch) -> None:
    b.transfers.to_parquet(folder / f"{name}-transfers.parquet", index=False)
    b.invoices.to_parquet(folder / f"{name}-invoices.parquet", index=False)
    b.matches.to_parquet(folder / f"{name}-matches.parquet", index=False)


def _read_month(folder: Path, name: str, month: str) -> MonthBatch:
    return MonthBatch(
        month,
        pd.read_parquet(folder / f"{name}-transfers.parquet"),
        pd.read_parquet(folder / f"{name}-invoices.parquet"),
        pd.read_parquet(folder / f"{name}-matches.parquet"),
    )


def step_synth(folder: Path, job: dict) -> dict:
    """Child: simulate warm-up, training and predict months; write them as parquet."""
    from cashmatch.synth import SynthConfig, generate

    size, n_train = job["size"], job["train_months"]
    data = generate(
        SynthConfig(
            months=WARMUP_MONTHS + n_train + 1,
            scale=size / TRANSFERS_PER_SCALE,
            seed=job["seed"],
            profile=job["profile"],
        )
    )
    batches = month_batches(data.invoices, data.transfers, data.matches)[WARMUP_MONTHS:]
    del data
    train, test = batches[:n_train], batches[n_train]
    months = []
    for k, b in enumerate(train):
        _write_month(folder, f"train{k:02d}", b)
        months.append(b.month)
    # The predicted month sees `invoices_per_transfer` open invoices per transfer: every invoice
    # its labels pay and a random sample of the other open ones (the simulator's open backlog
    # grows month by month, to over 3 per transfer after a year).
    want = round(job["invoices_per_transfer"] * len(test.transfers))
    paid = test.invoices["invoice_id"].isin(set(test.matches["invoice_id"]))
    others = test.invoices[~paid]
    take = max(0, min(len(others), want - int(paid.sum())))
    sample = others.sample(n=take, random_state=job["seed"])
    invoices = pd.concat([test.invoices[paid], sample]).sort_values("invoice_id")
    test = MonthBatch(test.month, test.transfers, invoices.reset_index(drop=True), test.matches)
    _write_month(folder, "test", test)
    return {
        "train_months": months,
        "test_month": test.month,
        "train_transfers": sum(len(b.transfers) for b in train),
        "train_open_invoices": sum(len(b.invoices) for b in train) / max(1, len(train)),
        "test_transfers": len(test.transfers),
        "test_invoices": len(test.invoices),
        "test_open_invoices": len(batches[n_train].invoices),
    }


def step_train(folder: Path, job: dict) -> dict:
    """Child: train on the stored training months and store the model."""
    months = json.loads((folder / "synth.json").read_text())["train_months"]
    batches = [_read_month(folder, f"train{k:02d}", m) for k, m in enumerate(months)]
    t0 = time.perf_counter()
    model = train_matcher(batches, MatcherConfig())
    seconds = time.perf_counter() - t0
    (folder / "model.zip").write_bytes(model.to_bytes())
    return {"seconds": seconds, "peak_mb": peak_mb(), "metrics": model.training_metrics}


def step_predict(folder: Path, job: dict) -> dict:
    """Child: predict the stored month with the stored model, timing each stage."""
    month = json.loads((folder / "synth.json").read_text())["test_month"]
    b = _read_month(folder, "test", month)
    matcher = TrainedMatcher.from_bytes((folder / "model.zip").read_bytes())
    with stage_clock(PREDICT_HOOKS) as spent:
        t0 = time.perf_counter()
        pred = matcher.predict(b.transfers, b.invoices)
        seconds = time.perf_counter() - t0
    m = evaluate(pred, b.transfers, b.matches)
    return {"seconds": seconds, "peak_mb": peak_mb(), "stages": dict(spent), "metrics": m}


STEPS = {"synth": step_synth, "train": step_train, "predict": step_predict}


def run_step(step: str, folder: Path) -> dict:
    """Run one step in a fresh process; its report (seconds, peak MB, ...) as a dict."""
    done = subprocess.run(
        [sys.executable, __file__, "--step", step, "--dir", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"step {step} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def step_main(step: str, folder: Path) -> None:
    """Inside the child: run `step` and print its report as the last line of stdout."""
    job = json.loads((folder / "job.json").read_text())
    t0 = time.perf_counter()
    out = STEPS[step](folder, job)
    out.setdefault("seconds", time.perf_counter() - t0)
    out.setdefault("peak_mb", peak_mb())
    if step == "synth":
        (folder / "synth.json").write_text(json.dumps(out))
    print(json.dumps(out))


def _growth(rows: list[tuple[int, dict]], key: str = "seconds") -> list[str]:
    out, prev = [], None
    for size, r in rows:
        out.append("" if prev is None else f"{(r[key] / prev[1]) / (size / prev[0]):.2f}")
        prev = (size, r[key])
    return out


def _verdict(ok: bool) -> str:
    return "[green]met[/green]" if ok else "[red]not met[/red]"


def scale(args: argparse.Namespace, console: Console) -> None:
    """Speed mode: synthesize, train and predict each size in fresh processes; print tables."""
    results: list[tuple[int, dict, dict, dict]] = []
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    with tempfile.TemporaryDirectory(prefix="cashmatch-quality-scale-") as tmp:
        for size in args.sizes:
            folder = Path(tmp) / f"size-{size}"
            folder.mkdir()
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
            results.append((size, synth, train, predict))
            for f in folder.iterdir():
                f.unlink()
    load_end = Path("/proc/loadavg").read_text().split()[:3] if load else []
    console.print(_train_table(results, args.train_months))
    console.print(_predict_table(results))
    if results[-1][0] >= 100_000:
        console.print(_targets_table(results))
    else:
        console.print("targets are judged at 100,000 transfers a month: not measured")
    if load:
        console.print(
            f"load average (1/5/15 min) at start {' '.join(load)}, end {' '.join(load_end)}"
        )


def _by_size(title: str, sizes: list[int], rows: list[tuple[str, list[str]]]) -> Table:
    """A table with one column per size and one row per measure (narrow enough for a terminal)."""
    t = Table(title=title)
    t.add_column("transfers a month")
    for size in sizes:
        t.add_column(f"{size:,}", justify="right")
    for label, values in rows:
        t.add_row(label, *values)
    return t


def _train_table(results: list[tuple[int, dict, dict, dict]], n_months: int) -> Table:
    sizes = [size for size, *_ in results]
    metrics = [train["metrics"] for _, _, train, _ in results]
    rows = [
        ("training transfers", [f"{synth['train_transfers']:,}" for _, synth, _, _ in results]),
        (
            "open invoices / month",
            [f"{synth['train_open_invoices']:,.0f}" for _, synth, _, _ in results],
        ),
        (
            "fitted on (transfers)",
            [f"{m.get('fit_transfers', m.get('train_transfers', 0.0)):,.0f}" for m in metrics],
        ),
        ("synthesis s (not counted)", [f"{synth['seconds']:.0f}" for _, synth, _, _ in results]),
        (
            "[bold]train s[/bold]",
            [f"[bold]{train['seconds']:.1f}[/bold]" for *_, train, _ in results],
        ),
    ]
    for stage in TRAIN_STAGES:
        values = [m.get(f"seconds_{stage}") for m in metrics]
        rows.append(
            (f"  {stage.replace('_', ' ')} s", ["-" if v is None else f"{v:.1f}" for v in values])
        )
    rows += [
        (
            "[bold]peak MB[/bold]",
            [f"[bold]{train['peak_mb']:.0f}[/bold]" for *_, train, _ in results],
        ),
        ("growth (time / size ratio)", _growth([(size, train) for size, _, train, _ in results])),
    ]
    return _by_size(f"training on {n_months} months (fresh process each)", sizes, rows)


def _predict_table(results: list[tuple[int, dict, dict, dict]]) -> Table:
    sizes = [size for size, *_ in results]
    predicts = [predict for *_, predict in results]
    rows = [
        ("transfers", [f"{synth['test_transfers']:,}" for _, synth, _, _ in results]),
        ("open invoices", [f"{synth['test_invoices']:,}" for _, synth, _, _ in results]),
        ("[bold]predict s[/bold]", [f"[bold]{p['seconds']:.1f}[/bold]" for p in predicts]),
    ]
    for stage in PREDICT_STAGES:
        rows.append((f"  {stage} s", [f"{p['stages'].get(stage, 0.0):.1f}" for p in predicts]))
    rows += [
        ("  other s", [f"{p['seconds'] - sum(p['stages'].values()):.1f}" for p in predicts]),
        ("[bold]peak MB[/bold]", [f"[bold]{p['peak_mb']:.0f}[/bold]" for p in predicts]),
        (
            "growth (time / size ratio)",
            _growth([(size, p) for size, p in zip(sizes, predicts, strict=True)]),
        ),
        ("auto_rate@99", [f"{p['metrics']['auto_rate@99']:.4f}" for p in predicts]),
        (
            "own auto precision",
            [f"{p['metrics']['auto_decision_precision']:.4f}" for p in predicts],
        ),
        ("exact-set accuracy", [f"{p['metrics']['exact_set_accuracy']:.4f}" for p in predicts]),
    ]
    return _by_size("predicting the next month (fresh process each)", sizes, rows)


def _targets_table(results: list[tuple[int, dict, dict, dict]]) -> Table:
    t = Table(title=f"targets at {results[-1][0]:,} transfers a month")
    for col in ["target", "measured", "verdict"]:
        t.add_column(col)
    _, _, train, predict = results[-1]
    checks = [
        (
            "predict one month < 2 min",
            f"{predict['seconds']:.1f} s",
            predict["seconds"],
            "predict_s",
        ),
        (
            "predict peak memory < 4 GB",
            f"{predict['peak_mb']:.0f} MB",
            predict["peak_mb"],
            "predict_mb",
        ),
        ("train 12 months < 15 min", f"{train['seconds']:.1f} s", train["seconds"], "train_s"),
    ]
    for label, shown, value, key in checks:
        t.add_row(label, shown, _verdict(value < TARGETS[key]))
    return t


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
    ap.add_argument("--patterns", action="store_true", help="exact-set accuracy per noise pattern")
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
    if args.scale:
        scale(args, console)
    else:
        quality(args, console)


if __name__ == "__main__":
    main()
