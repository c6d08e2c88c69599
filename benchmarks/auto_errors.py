"""Why auto decisions go wrong outside the training world: a small analysis.

Trains as `quality.py --worlds` does (default world, all months but the last two), then for
each world's last two months lists the transfers settled automatically, grouped by the chosen
option's kind and size, the true set's size and the confidence range, with how many of them
were wrong. `--model FILE` reuses (or writes) the trained model so several looks cost one fit.

    .venv/bin/python benchmarks/auto_errors.py [--model FILE] [--dump FILE] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.matcher_quality.worlds import World, _data
from cashmatch.domain.matching import MatcherConfig, month_batches, train_matcher
from cashmatch.domain.matching.metrics import per_transfer
from cashmatch.domain.matching.trained import TrainedMatcher

KIND_NAMES = ["empty", "single", "subset", "refs", "refs+", "oldest", "period", "cp_sum"]
BINS = [0.0, 0.9, 0.95, 0.98, 0.99, 0.995, 1.01]


def _batches(w: World):
    inv, tr, mt, notes = _data(w, 1.0)
    return [b for b in month_batches(inv, tr, mt) if len(b.transfers)], notes


def _model(path: str | None) -> TrainedMatcher:
    if path and Path(path).exists():
        return TrainedMatcher.from_bytes(Path(path).read_bytes())
    batches, _ = _batches(World("own", "default", 7, 14))
    model = train_matcher(batches[:-2], MatcherConfig())
    if path:
        Path(path).write_bytes(model.to_bytes())
    return model


def world_rows(model: TrainedMatcher, w: World) -> pd.DataFrame:
    """Per transfer of the world's last two months: chosen kind/size, truth, conf, auto, ok."""
    batches, _ = _batches(w)
    history, test = list(batches[:-2]), batches[-2:]
    rows = []
    for b in test:
        d = model._run(b.transfers, b.invoices, history)
        pred = model._output(d)
        pt = per_transfer(pred, b.transfers, b.matches)
        kind = d.opts["kind"].to_numpy()[d.best].astype(int)
        size = d.opts["size"].to_numpy()[d.best].astype(int)
        pt["kind"] = [KIND_NAMES[k] for k in kind]
        pt["size"] = size
        pt["true_size"] = pt["true"].map(len)
        rows.append(pt)
        history.append(b)
    out = pd.concat(rows, ignore_index=True)
    out["world"] = w.name
    return out


def summary(df: pd.DataFrame) -> pd.DataFrame:
    a = df[df["auto"]].copy()
    a["conf_bin"] = pd.cut(a["confidence"], BINS, right=False).astype(str)
    a["wrong"] = ~a["exact"]
    a["size_b"] = np.minimum(a["size"], 6)
    return (
        a.groupby(["world", "kind", "size_b", "conf_bin"], observed=True)["wrong"]
        .agg(["count", "sum"])
        .reset_index()
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--dump", help="write the per-transfer frame (pickle) here")
    ap.add_argument("--habit-seeds", type=int, nargs="*", default=[1, 2, 3])
    args = ap.parse_args()
    model = _model(args.model)
    worlds = [World("own", "default", 7, 14), World("messy", "messy", 11, 8)]
    worlds += [World(f"habits-{k}", "default", 100 + k, 8, habits=k) for k in args.habit_seeds]
    frames = [world_rows(model, w) for w in worlds]
    df = pd.concat(frames, ignore_index=True)
    if args.dump:  # per transfer, for a closer look (e.g. precision at other cuts)
        df.drop(columns=["pred", "true"]).to_pickle(args.dump)
    s = summary(df)
    if args.json:
        print(json.dumps(s.to_dict(orient="records")))
        return
    pd.set_option("display.width", 80)
    print(s[s["sum"] > 0].to_string(index=False))
    print(
        df.groupby("world")
        .apply(
            lambda g: pd.Series(
                {"auto": g["auto"].mean(), "prec": g.loc[g["auto"], "exact"].mean()}
            )
        )
        .to_string()
    )


if __name__ == "__main__":
    main()
