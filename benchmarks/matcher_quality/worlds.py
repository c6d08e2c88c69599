"""Worlds it was not tuned on: train on one simulated world, score others.

The model trains on the first months of one world (the project profile, as `--profile` says)
and then scores the last two months of each test world: that world itself ("own"), the other
profile, and worlds whose habits the randomizer drew (synth/habit_draws.py: collective sizes up
to 30, short titles, own document numbers, netting, fee sizes, structured formats...). Each
test world's earlier months are its history (what the matcher has learned about its payers by
the time the month is scored), as in production; the model itself never sees them.

Two tables: per world the headline metrics, and per world and kind of transfer the exact-set
accuracy (none / single / multi by size / with credit notes / structured titles), each cell
with its count below 100 marked. `--json` prints the same as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from cashmatch.domain.matching import MatcherConfig, evaluate, month_batches, train_matcher
from cashmatch.domain.matching.metrics import per_transfer

KINDS = ("none", "single", "m2-5", "m6-15", "m16+", "credit", "struct")
# an RF creditor reference or SEPA tags (synth/titles.py `_structured`)
_STRUCTURED = re.compile(r"\bRF\d{2}|EREF\+|SVWZ\+")


@dataclass(frozen=True)
class World:
    name: str
    profile: str
    seed: int
    months: int
    habits: int | None = None


def test_worlds(args: argparse.Namespace) -> list[World]:
    """The worlds scored: the training world itself, the other profile, randomized draws."""
    other = "messy" if args.profile == "default" else "default"
    worlds = [
        World("own", args.profile, args.seed, args.months),
        World(other, other, args.seed + 4, args.test_months),
    ]
    for k in args.habit_seeds:
        worlds.append(World(f"habits-{k}", args.profile, 100 + k, args.test_months, habits=k))
    return worlds


def _data(w: World, scale: float):
    from cashmatch.synth import SynthConfig, generate

    d = generate(
        SynthConfig(months=w.months, scale=scale, seed=w.seed, profile=w.profile, habits=w.habits)
    )
    return d.invoices, d.transfers, d.matches, d.truth_notes


def kind_masks(pt: pd.DataFrame, transfers: pd.DataFrame, notes: pd.DataFrame | None) -> dict:
    """Per kind of transfer, which rows of `pt` (per_transfer's frame) are of that kind."""
    size = pt["true"].map(len).to_numpy()
    credit_ids = set()
    if notes is not None:
        credit_ids = set(notes.loc[notes["pattern"] == "credit_note", "transfer_id"].astype(str))
    titles = transfers.set_index(transfers["transfer_id"].astype(str))["title"]
    title = pt["transfer_id"].map(titles).fillna("").astype(str)
    return {
        "none": size == 0,
        "single": size == 1,
        "m2-5": (size >= 2) & (size <= 5),
        "m6-15": (size >= 6) & (size <= 15),
        "m16+": size >= 16,
        "credit": pt["transfer_id"].isin(credit_ids).to_numpy(),
        "struct": title.str.contains(_STRUCTURED).to_numpy() & (size >= 1),
    }


def score_world(model, w: World, args: argparse.Namespace, train_batches=None) -> dict:
    """Headline metrics and exact-set accuracy per kind on the world's last two months."""
    if train_batches is not None:
        batches, notes, tr_all = train_batches
    else:
        inv, tr_all, mt, notes = _data(w, args.size_factor)
        batches = [b for b in month_batches(inv, tr_all, mt) if len(b.transfers)]
    history, test = list(batches[:-2]), batches[-2:]
    preds, t0 = [], time.perf_counter()
    for b in test:
        preds.append(model.predict(b.transfers, b.invoices, history=history))
        history.append(b)  # the month is labelled (closed) before the next one is scored
    seconds = time.perf_counter() - t0
    tr = pd.concat([b.transfers for b in test], ignore_index=True)
    mt = pd.concat([b.matches for b in test], ignore_index=True)
    pred = pd.concat(preds, ignore_index=True)
    m = evaluate(pred, tr, mt)
    pt = per_transfer(pred, tr, mt)
    exact = pt["exact"].to_numpy(dtype=bool)
    kinds = {}
    for k, mask in kind_masks(pt, tr_all, notes).items():
        n = int(mask.sum())
        kinds[k] = {"n": n, "exact": float(exact[mask].mean()) if n else None}
    return {
        "world": w.name,
        "profile": w.profile,
        "seed": w.seed,
        "habits": w.habits,
        "transfers": len(tr),
        "exact_set": m["exact_set_accuracy"],
        "multi_exact": m["multi_exact_set_accuracy"],
        "n_multi": int(m["n_multi"]),
        "auto_precision": m["auto_decision_precision"],
        "auto_coverage": m["auto_decision_rate"],
        "auto_rate@99": m["auto_rate@99"],
        "predict_seconds": seconds,
        "kinds": kinds,
    }


def run_worlds(args: argparse.Namespace) -> dict:
    """Train on the first world's months but the last two; score every test world."""
    worlds = test_worlds(args)
    own = worlds[0]
    inv, tr, mt, notes = _data(own, args.size_factor)
    batches = [b for b in month_batches(inv, tr, mt) if len(b.transfers)]
    t0 = time.perf_counter()
    model = train_matcher(batches[:-2], MatcherConfig())
    train_s = time.perf_counter() - t0
    results = [score_world(model, own, args, (batches, notes, tr))]
    results += [score_world(model, w, args) for w in worlds[1:]]
    return {"train_world": own.name, "train_seconds": train_s, "worlds": results}


def _cell(v: float | None, n: int) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" + ("*" if n < 100 else "")


def print_worlds(out: dict, console: Console) -> None:
    """The two tables of `run_worlds`' result, each within 80 columns."""
    head = Table(title=f"trained on {out['train_world']} - last 2 months of each world")
    for col in ("world", "n", "exact", "multi", "n multi", "auto prec", "auto cov"):
        head.add_column(col, justify="left" if col == "world" else "right")
    for r in out["worlds"]:
        head.add_row(
            r["world"],
            str(r["transfers"]),
            f"{r['exact_set']:.4f}",
            f"{r['multi_exact']:.4f}",
            str(r["n_multi"]),
            f"{r['auto_precision']:.4f}",
            f"{r['auto_coverage']:.4f}",
        )
    console.print(head)
    kinds = Table(title="exact-set accuracy per kind of transfer (* fewer than 100)")
    kinds.add_column("world")
    for k in KINDS:
        kinds.add_column(k, justify="right")
    for r in out["worlds"]:
        kinds.add_row(
            r["world"], *(_cell(r["kinds"][k]["exact"], r["kinds"][k]["n"]) for k in KINDS)
        )
    counts = Table(title="transfers per kind")
    counts.add_column("world")
    for k in KINDS:
        counts.add_column(k, justify="right")
    for r in out["worlds"]:
        counts.add_row(r["world"], *(str(r["kinds"][k]["n"]) for k in KINDS))
    console.print(kinds)
    console.print(counts)
    worst = min(r["multi_exact"] for r in out["worlds"])
    prec = min(r["auto_precision"] for r in out["worlds"])
    console.print(
        f"multi-invoice exact >= 0.95 in every world: {'met' if worst >= 0.95 else 'NOT met'}"
        f" (worst {worst:.4f})"
    )
    console.print(
        f"own auto precision >= 0.99 in every world: {'met' if prec >= 0.99 else 'NOT met'}"
        f" (worst {prec:.4f})"
    )


def worlds(args: argparse.Namespace, console: Console) -> None:
    """Entry of `quality.py --worlds`."""
    out = run_worlds(args)
    if args.json:
        print(json.dumps(out, default=lambda v: v.item() if isinstance(v, np.generic) else str(v)))
    else:
        print_worlds(out, console)
