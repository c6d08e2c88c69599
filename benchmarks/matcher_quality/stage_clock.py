"""Seconds per predict stage, by wrapping the functions of the matcher's model module.

Predict does not report its own stages; wrapping the module's functions while one prediction
runs times them without changing the library. Only the outermost wrapped call is timed, so a
stage calling another is not counted twice; what no wrapped function covers shows as "other".
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterator

PREDICT_STAGES = ["prepare", "blocking", "features", "pair model", "set assembly"]
# Functions of cashmatch.domain.matching.model the predict stages are timed through
# (see stage_clock).
PREDICT_HOOKS: dict[str, str] = {
    "prepare": "prepare",
    "candidate_pairs": "blocking",
    "pair_features": "features",
    "_proba": "pair model",  # or "set assembly" when given set features, see _proba_stage
    "_options": "set assembly",
    "_settle_in_order": "set assembly",
}


@contextlib.contextmanager
def stage_clock(module, hooks: dict[str, str]) -> Iterator[dict[str, float]]:
    """Seconds spent in each stage while the block runs, by wrapping `module`'s functions.

    Only the outermost wrapped call is timed, so a stage calling another is not counted twice.
    A name the module no longer has is skipped: its time shows up as "other".
    """
    spent: dict[str, float] = defaultdict(float)
    active: list[bool] = []
    originals = {name: getattr(module, name) for name in hooks if hasattr(module, name)}

    def timed(fn: Callable, name: str) -> Callable:
        def wrapper(*a, **kw):
            if active:
                return fn(*a, **kw)
            active.append(True)
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                stage = _proba_stage(a) if name == "_proba" else hooks[name]
                spent[stage] += time.perf_counter() - t0
                active.pop()

        return wrapper

    for name, fn in originals.items():
        setattr(module, name, timed(fn, name))
    try:
        yield spent
    finally:
        for name, fn in originals.items():
            setattr(module, name, fn)


def _proba_stage(args: tuple) -> str:
    # _proba scores both pairs and sets: a model fitted on the pair features is the pair
    # model, any other is the set model, part of set assembly.
    from cashmatch.domain.matching.features import FEATURES

    model = args[0] if args else None
    return (
        "pair model" if getattr(model, "n_features_in_", None) == len(FEATURES) else "set assembly"
    )
