"""The speed mode's steps, each run in a fresh process: synthesize, train, predict.

A fresh process per step makes its wall time and peak memory (ru_maxrss, which only grows)
that step's own: the synthesizer's data is not in training's peak, nor training's in predict's.
Steps hand data on through parquet files and a stored model in the size's folder; each prints
its report as the last line of stdout (JSON), which the parent reads.
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import pandas as pd

from benchmarks.matcher_quality.stage_clock import PREDICT_HOOKS, stage_clock
from cashmatch.domain.matching import (
    MatcherConfig,
    MonthBatch,
    TrainedMatcher,
    evaluate,
    month_batches,
    train_matcher,
)

TRANSFERS_PER_SCALE = 1_500  # the simulator makes about this many transfers a month at scale 1
WARMUP_MONTHS = 2  # the simulator's first months ramp up (about 37% and 74% of a full month)


def peak_mb() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
