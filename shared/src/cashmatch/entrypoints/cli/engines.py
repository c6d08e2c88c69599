"""Where `cashmatch match` computes a month's chunks: this process, or parallel Ray tasks."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator

from cashmatch.domain.matching.trained import FirstPasses


class Engine(enum.StrEnum):
    """`--engine`: local (one process, chunk after chunk) or ray (chunks in Ray tasks)."""

    local = "local"
    ray = "ray"


@contextlib.contextmanager
def engine(chosen: Engine, address: str | None, workers: int) -> Iterator[FirstPasses | None]:
    """The first passes of `chosen` for the command's duration (None: the default, local)."""
    if chosen is Engine.local:
        yield None
        return
    from cashmatch.adapters.ray_chunks import ray_engine  # Ray starts only when asked for

    with ray_engine(address, workers) as first_passes:
        yield first_passes
