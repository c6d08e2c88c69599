"""A model swap v1 -> v2 under steady load: what failed, and when the new version answered.

16 clients post single matches and record which version answered each; the swap starts after
2 s, in a thread, so the load never pauses for it. "v1 answers after return" counts answers of
the old version once the swap call returned: a swap that returns before it took effect.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks.serving.load import load


def swap_under_load(
    url: str, bodies: list[bytes], swap: Callable[[], object], seconds: float
) -> dict[str, str]:
    """Steady load of 16 clients; `swap` runs after 2 s; when did v2 answer, what failed."""
    result: dict[str, Any] = {}

    def do_swap() -> None:
        time.sleep(2.0)
        result["start"] = time.monotonic()
        swap()
        result["done"] = time.monotonic()

    swapper = threading.Thread(target=do_swap)
    swapper.start()
    run = load(url, bodies, 16, seconds, track_versions=True)
    swapper.join()
    first_new = min((at for at, v in run.versions if v == "v2"), default=None)
    old_after = [at for at, v in run.versions if v == "v1" and at > result["done"]]
    return {
        "requests": str(len(run.latencies) + run.failures),
        "failed": str(run.failures) + (f" ({run.errors[0][:60]})" if run.errors else ""),
        "v2 first answers after": "never"
        if first_new is None
        else f"{first_new - result['start']:.2f}s",
        "swap call returned after": f"{result['done'] - result['start']:.2f}s",
        "v1 answers after return": str(len(old_after)),
        "p99 during swap": run.row()[2] + " ms",
    }
