"""Quality: the matcher against the rules baseline on the two months after its training.

Training takes all months but the last two; the last two are scored one after the other, each
with the months before it as history (a month is labelled, closed, before the next is scored),
as the monthly cycle runs. Besides the metrics: candidate recall, the share of true pairs that
reach scoring at all, since a pair blocking drops no model can propose.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
from rich.console import Console
from rich.table import Table

from benchmarks.matcher_quality.synthesis import synthesize
from cashmatch.domain.matching import (
    MatcherConfig,
    evaluate,
    month_batches,
    rules_baseline,
    train_matcher,
)
from cashmatch.domain.matching.candidates import candidate_pairs
from cashmatch.domain.matching.knowledge import combine, observations, payer_map
from cashmatch.domain.matching.metrics import per_transfer
from cashmatch.domain.matching.prepared import prepare


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
        args.source,
        args.profile,
        args.size_factor,
        args.seed,
        args.months,
        args.shift_from,
        getattr(args, "structured", None),
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
