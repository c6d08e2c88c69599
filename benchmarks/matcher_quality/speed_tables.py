"""The speed mode's tables: training, predicting, and the targets at 100k transfers a month.

One column per size and one row per measure, so three sizes fit a terminal. "growth" is the
time ratio between sizes divided by the size ratio: 1.0 is linear, below 1.0 grows slower.
"""

from __future__ import annotations

from rich.table import Table

from benchmarks.matcher_quality.stage_clock import PREDICT_STAGES

TARGETS = {"predict_s": 120.0, "predict_mb": 4096.0, "train_s": 900.0}  # at 100k a month
TRAIN_STAGES = ["knowledge", "scoring", "pair_fits", "set_fits", "calibration"]

# (size, synth report, train report, predict report) for each size, smallest first
Results = list[tuple[int, dict, dict, dict]]


def _growth(rows: list[tuple[int, dict]], key: str = "seconds") -> list[str]:
    out, prev = [], None
    for size, r in rows:
        out.append("" if prev is None else f"{(r[key] / prev[1]) / (size / prev[0]):.2f}")
        prev = (size, r[key])
    return out


def _verdict(ok: bool) -> str:
    return "[green]met[/green]" if ok else "[red]not met[/red]"


def _by_size(title: str, sizes: list[int], rows: list[tuple[str, list[str]]]) -> Table:
    """A table with one column per size and one row per measure (narrow enough for a terminal)."""
    t = Table(title=title)
    t.add_column("transfers a month")
    for size in sizes:
        t.add_column(f"{size:,}", justify="right")
    for label, values in rows:
        t.add_row(label, *values)
    return t


def train_table(results: Results, n_months: int) -> Table:
    """Training at each size: data, seconds per stage, peak memory, growth."""
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


def predict_table(results: Results) -> Table:
    """Predicting one month at each size: seconds per stage, peak memory, growth, quality."""
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


def targets_table(results: Results) -> Table:
    """The targets, judged at the largest size: predict time and memory, train time."""
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
