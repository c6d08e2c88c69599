"""The chunks of a month's first passes computed in parallel Ray tasks (`--engine ray`).

Ray tasks over object refs: the model and the month (its invoices prepared once) go into the
object store once, each chunk is one task reading them, and the results come back in chunk
order, a few ahead of the settling (which the caller does locally, in booking order: the cheap,
sequential "reduce"). Ray schedules the tasks and retries those whose worker died; a chunk
whose task raised is reported by its key. A small window of tasks in flight bounds what waits
in the object store, and so the memory, to a few chunks whatever the month's size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator

import numpy as np
import ray

from cashmatch.domain.matching.chunked import Chunk, ChunkFailed, take_rows
from cashmatch.domain.matching.settlement import FirstPass
from cashmatch.domain.matching.trained import FirstPasses, MonthPlan, TrainedMatcher

# Retries when a worker dies (killed, out of memory); an exception in the task is not retried:
# a bad row fails the same way again.
WORKER_RETRIES = 3


@ray.remote(max_retries=WORKER_RETRIES)
def _first_pass(model: TrainedMatcher, plan: MonthPlan, chunk: Chunk) -> FirstPass:
    f = model.first_pass(plan, chunk)
    # The month's invoices stay out of the reply: the caller has them already.
    return dataclasses.replace(f, s=dataclasses.replace(f.s, prepared=f.s.prepared.own_part()))


def ray_first_passes(window: int) -> FirstPasses:
    """`TrainedMatcher.predict`'s `first_passes` on the connected Ray cluster, `window` chunks
    in flight at most."""

    def run(model: TrainedMatcher, plan: MonthPlan) -> Iterator[FirstPass]:
        # What every chunk shares is computed and stored once, not once per task.
        plan.base.with_transfers(take_rows(plan.base.transfer_frame, np.arange(0)))
        model_ref, plan_ref = ray.put(model), ray.put(plan)
        pending: list[tuple[Chunk, ray.ObjectRef]] = []
        chunks = iter(plan.chunks)
        try:
            while True:
                while len(pending) < window and (c := next(chunks, None)) is not None:
                    pending.append((c, _first_pass.remote(model_ref, plan_ref, c)))
                if not pending:
                    return
                c, ref = pending.pop(0)
                try:
                    f = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the task raised, or its worker died
                    raise ChunkFailed(c.key, _cause(exc)) from exc
                prepared = f.s.prepared.joined_with(plan.base)
                yield dataclasses.replace(f, s=dataclasses.replace(f.s, prepared=prepared))
        finally:
            for _, ref in pending:  # a failed month leaves no work running
                ray.cancel(ref, force=True)

    return run


def _cause(exc: BaseException) -> str:
    """What went wrong in the task, without Ray's traceback of the worker."""
    if isinstance(exc, ray.exceptions.RayTaskError):
        inner = exc.as_instanceof_cause()
        cause = getattr(inner, "cause", None)
        if cause is not None:
            return f"{type(cause).__name__}: {cause}"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


@contextlib.contextmanager
def ray_engine(address: str | None, workers: int) -> Iterator[FirstPasses]:
    """Ray for one command: joins the cluster at `address` (a RayJob's own), else starts a local
    one of `workers` CPUs and stops it afterwards."""
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(
                num_cpus=workers,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,
            )
    try:
        yield ray_first_passes(window=2 * workers)
    finally:
        if started:
            ray.shutdown()
