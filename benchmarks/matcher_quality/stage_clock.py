"""Seconds per predict stage, by wrapping the functions of the matcher's modules.

Predict does not report its own stages; wrapping the module's functions while one prediction
runs times them without changing the library. Only the outermost wrapped call is timed, so a
stage calling another is not counted twice; what no wrapped function covers shows as "other".
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from types import ModuleType

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
    # proba scores both pairs and sets: a model fitted on the pair features is the pair
    # model, any other is the set model, part of set assembly.
    from cashmatch.domain.matching.features import FEATURES

    model = args[0] if args else None
    return (
        "pair model" if getattr(model, "n_features_in_", None) == len(FEATURES) else "set assembly"
    )
