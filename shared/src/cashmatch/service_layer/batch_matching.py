"""Score one month of a contract warehouse with a model, using only what was known before it."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from cashmatch.domain.chunk_size import DEFAULT_CHUNK
from cashmatch.domain.dataset.split import months_between
from cashmatch.domain.matching import MonthBatch, TrainedMatcher
from cashmatch.domain.matching.trained import FirstPasses
from cashmatch.ports import Warehouse
from cashmatch.service_layer.context import Ports
from cashmatch.service_layer.month_reading import month_dates, read_month

OUTPUT_COLUMNS = ["transfer_id", "invoice_id", "amount", "confidence", "decision", "reasons", "why"]


def history_before(warehouse: Warehouse, month: str, months: int) -> list[MonthBatch]:
    """Labelled months before `month` (at most `months` of them), for payer habits."""
    bounds = warehouse.month_bounds()
    if bounds is None or bounds[0] >= month:
        return []
    first = max(bounds[0], str(pd.Period(month, freq="M") - months))
    last = str(pd.Period(month, freq="M") - 1)
    batches = []
    for m in months_between(first, last):
        # The collector's row checks: a bad row of an earlier month teaches nothing.
        checked = read_month(warehouse, m)
        batches.append(MonthBatch(m, checked.transfers, checked.invoices, checked.matches))
    return batches


def chunked(model: TrainedMatcher, ports: Ports) -> Callable[..., pd.DataFrame]:
    """`model.predict` a chunk of whole booking days at a time (`CASHMATCH_MATCH_CHUNK`):
    the same rows, memory for one chunk's candidate pairs instead of the month's."""
    return functools.partial(model.predict, chunk=ports.settings.match_chunk)


def match_month(
    model: TrainedMatcher,
    warehouse: Warehouse,
    month: str,
    *,
    history_months: int = 12,
    chunk: int | None = DEFAULT_CHUNK,
    first_passes: FirstPasses | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predictions for every valid transfer booked in `month` (one row per predicted pair), and
    the month's rows set aside as invalid, by key with the reason (the collector's checks).

    `chunk`: transfers (whole booking days) matched at a time; None: the month at once.
    `first_passes`: who computes the chunks' first passes (default: this process, in turn; the
    Ray engine: parallel tasks). `ChunkFailed` names a chunk that failed."""
    start, end = month_dates(month)
    transfers = warehouse.transfers(start, end)
    if transfers.empty:
        raise ValueError(f"no transfers booked in {month}")
    checked = read_month(warehouse, month, labelled=False, transfers=transfers)
    history = history_before(warehouse, month, history_months)
    predictions = model.predict(
        checked.transfers,
        checked.invoices,
        history=history,
        chunk=chunk,
        first_passes=first_passes,
    )
    return predictions[OUTPUT_COLUMNS], checked.quarantine


def write_csv_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Write CSV next to `path`, then rename: a reader never sees half a file."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(buffer.getvalue())
    tmp.replace(path)
