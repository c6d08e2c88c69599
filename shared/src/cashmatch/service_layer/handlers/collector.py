"""Collector: month.closed → validated training slice (and, the first time, the frozen test set)
→ dataset.ready."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any, NamedTuple

import pandas as pd

from cashmatch.domain.dataset.slices import Slice
from cashmatch.domain.dataset.split import is_test_transfer, months_between
from cashmatch.domain.errors import PermanentError
from cashmatch.domain.events import DatasetReady, Envelope, MonthClosed
from cashmatch.service_layer.context import Ports
from cashmatch.service_layer.month_reading import read_month
from cashmatch.service_layer.publishing import publish_answer

log = logging.getLogger(__name__)
SOURCE = "/services/collector"


def _read_month(ports: Ports, month: str) -> tuple[Slice, pd.DataFrame]:
    checked = read_month(ports.warehouse, month)
    frames = [checked.transfers, checked.invoices, checked.matches]
    for frame in frames:
        frame["month"] = month
    quarantine = checked.quarantine.assign(month=month)
    return Slice(*frames), quarantine


def _check_month(ports: Ports, month: str) -> tuple[str, str]:
    now = ports.clock()
    current = f"{now.year:04d}-{now.month:02d}"
    if month >= current:
        raise PermanentError(
            f"month {month} is not over yet (today is {now.date()}): cannot close it"
        )
    ports.warehouse.check_schema()
    bounds = ports.warehouse.month_bounds()
    if bounds is None:
        raise PermanentError("the warehouse has no transfers at all")
    first, last = bounds
    if month < first or month > last:
        raise PermanentError(
            f"no transfers booked in {month} (the warehouse holds {first}..{last})"
        )
    return first, last


def _without(part: Slice, transfer_ids: set[str]) -> Slice:
    keep = ~part.transfers["transfer_id"].isin(transfer_ids)
    return Slice(
        part.transfers[keep],
        part.invoices,
        part.matches[~part.matches["transfer_id"].isin(transfer_ids)],
    )


class _Collected(NamedTuple):
    """What a run read, by month: the validated slices (None: read again when writing it, so
    a backfill holds one month at a time) and the rows they left out."""

    slices: dict[str, Slice | None]
    quarantines: dict[str, pd.DataFrame]


def collect(event: Envelope, ports: Ports) -> str:
    """Handle month.closed; idempotent: the same month always yields the same slice and manifest."""
    payload = event.payload()
    assert isinstance(payload, MonthClosed)
    month = payload.month
    first, _ = _check_month(ports, month)
    test_manifest = ports.datasets.test_manifest()
    test_created = False
    if test_manifest is None:
        collected, test_manifest, test_created = _backfill(ports, first, month, event.id)
    else:
        collected = _collect_month(ports, month)
    _add_unplaced(ports, collected.quarantines, month)
    _write_slices(ports, collected)
    training_months, uri, version = _write_manifest(ports, month, test_manifest)
    rows = _row_counts(ports, month, training_months, test_manifest)
    quarantined = len(collected.quarantines[month])
    answer = DatasetReady(
        month=month,
        dataset_uri=uri,
        dataset_version=version,
        training_months=training_months,
        test_set_version=test_manifest["version"],
        test_set_created=test_created,
        rows=rows,
        quarantined=quarantined,
        caused_by=event.id,
    )
    publish_answer(ports, event, answer, SOURCE)
    log.info("collected %s: %s", month, json.dumps(rows))
    return f"dataset {version}: {rows['month_transfers']} transfers, {quarantined} quarantined"


def _backfill(
    ports: Ports, first: str, month: str, cause_id: str
) -> tuple[_Collected, dict[str, Any], bool]:
    """The first run: all labelled history up to the closed month, and the frozen test set
    drawn from it. Returns (what was read, the test set's manifest, whether this run froze it)."""
    months = months_between(first, month)
    # Month by month, twice (the test set first, then each month's slice, read again): the
    # history is never in memory at once. The first pass also finds the months' quarantines.
    quarantines: dict[str, pd.DataFrame] = {}
    valid = [0]

    def test_parts() -> Iterator[Slice]:
        settings = ports.settings
        for m in months:
            part, quarantines[m] = _read_month(ports, m)
            valid[0] += len(part.transfers)
            in_test = is_test_transfer(
                part.transfers["transfer_id"], settings.test_fraction, settings.split_seed
            )
            test_ids = set(part.transfers.loc[in_test, "transfer_id"])
            yield Slice(
                part.transfers[in_test],
                part.invoices,
                part.matches[part.matches["transfer_id"].isin(test_ids)],
            )

    def some_valid() -> None:
        if not valid[0]:
            raise PermanentError(
                f"no valid transfers up to {month}: nothing to build a test set from"
            )

    parts = test_parts()
    test_manifest, test_created = ports.datasets.freeze_test_parts(
        parts, backfill_until=month, caused_by=cause_id, before_write=some_valid
    )
    for _ in parts:  # a concurrent run froze it first: the quarantines are still needed
        pass
    slices: dict[str, Slice | None] = dict.fromkeys(months)
    return _Collected(slices, quarantines), test_manifest, test_created


def _collect_month(ports: Ports, month: str) -> _Collected:
    part, quarantine = _read_month(ports, month)
    if part.transfers.empty and quarantine.empty:
        raise PermanentError(f"no transfers booked in {month}")
    return _Collected({month: part}, {month: quarantine})


def _add_unplaced(ports: Ports, quarantines: dict[str, pd.DataFrame], month: str) -> None:
    # Rows no month can hold are reported with the month being closed: none vanishes unseen.
    unplaced = ports.warehouse.unplaced()
    if not unplaced.empty:
        quarantines[month] = pd.concat(
            [quarantines[month], unplaced.assign(month=month)], ignore_index=True
        )


def _write_slices(ports: Ports, collected: _Collected) -> None:
    datasets = ports.datasets
    # A month inside the backfill keeps its test transfers out of training, on every rebuild.
    frozen_ids = datasets.test_transfer_ids()
    for m, part in collected.slices.items():
        if part is None:
            part = _read_month(ports, m)[0]
        datasets.write_slice(m, _without(part, frozen_ids), collected.quarantines[m])
        del part


def _write_manifest(
    ports: Ports, month: str, test_manifest: dict[str, Any]
) -> tuple[list[str], str, str]:
    """Write the dataset manifest of `month`: (its training months, uri, version)."""
    datasets = ports.datasets
    settings = ports.settings
    training_months = [m for m in datasets.slice_months() if m <= month]
    manifest_body = {
        "month": month,
        "training_months": training_months,
        "slices": {m: datasets.slice_digests(m) for m in training_months},
        "test_set_version": test_manifest["version"],
        "split": {"fraction": settings.test_fraction, "seed": settings.split_seed},
    }
    uri, version = datasets.write_manifest(month, manifest_body)
    return training_months, uri, version


def _row_counts(
    ports: Ports, month: str, training_months: list[str], test_manifest: dict[str, Any]
) -> dict[str, int]:
    datasets = ports.datasets
    month_slice = datasets.read_slice(month)
    return {
        "month_transfers": len(month_slice.transfers),
        "month_labels": len(month_slice.matches),
        "month_open_invoices": len(month_slice.invoices),
        "train_transfers": sum(datasets.slice_rows(m) for m in training_months),
        "test_transfers": int(test_manifest["rows"]["transfers"]),
    }
