"""The collector's backfill writes the frozen test set month by month as Parquet row groups,
and what it writes is the test set the whole history in one frame gave."""

from __future__ import annotations

import io

import pandas as pd
import pyarrow.parquet as pq
import pytest

import cashmatch.service_layer.dataset_store as dataset_store
from cashmatch.domain.dataset.slices import FRAMES, Slice
from cashmatch.domain.dataset.split import is_test_transfer, months_between
from cashmatch.domain.events import MonthClosed, make_event
from cashmatch.entrypoints.service_table import HANDLERS
from cashmatch.service_layer.dataset_store import DatasetStore, frame_bytes, read_frame
from cashmatch.service_layer.dispatch import dispatch
from cashmatch.service_layer.handlers.collector import _read_month
from cashmatch.service_layer.publishing import publish_event

pytestmark = pytest.mark.integration


def _whole_history_test_set(ports, first: str, month: str) -> Slice:
    """The test set as the collector built it before: the history concatenated, then split."""
    read = [_read_month(ports, m)[0] for m in months_between(first, month)]
    whole = Slice(*(pd.concat([getattr(s, n) for s in read], ignore_index=True) for n in FRAMES))
    s = ports.settings
    in_test = is_test_transfer(whole.transfers["transfer_id"], s.test_fraction, s.split_seed)
    ids = set(whole.transfers.loc[in_test, "transfer_id"])
    return Slice(
        whole.transfers[in_test],
        whole.invoices,
        whole.matches[whole.matches["transfer_id"].isin(ids)],
    )


def test_the_backfill_writes_the_whole_history_test_set_in_row_groups(
    make_ports, small_warehouse, monkeypatch
):
    monkeypatch.setattr(dataset_store, "ROW_GROUP_ROWS", 500)
    ports = make_ports(warehouse=str(small_warehouse))
    publish_event(ports.bus, make_event(MonthClosed(month="2025-04"), source="/test"))
    (delivery,) = ports.bus.pull("collector", max_messages=1)
    dispatch("collector", HANDLERS["collector"], delivery, ports)

    expected = _whole_history_test_set(ports, "2025-01", "2025-04")
    got = ports.datasets.test_set()
    for name in FRAMES:
        pd.testing.assert_frame_equal(
            getattr(got, name), getattr(expected, name).reset_index(drop=True), check_dtype=True
        )
    data = ports.blobs.get("datasets/test/invoices.parquet").data
    groups = pq.ParquetFile(io.BytesIO(data)).metadata.num_row_groups
    assert groups >= 4  # at least one per month, none above 500 rows
    assert ports.datasets.test_transfer_ids() == set(expected.transfers["transfer_id"])
    assert ports.datasets.test_manifest()["months"] == ["2025-01", "2025-02", "2025-03", "2025-04"]
    # the months' slices keep the test transfers out, as before
    ids = ports.datasets.test_transfer_ids()
    for m in ["2025-01", "2025-04"]:
        assert not set(ports.datasets.read_slice(m).transfers["transfer_id"]) & ids


def test_a_big_frame_is_written_in_row_groups_and_reads_back_equal(monkeypatch):
    monkeypatch.setattr(dataset_store, "ROW_GROUP_ROWS", 100)
    frame = pd.DataFrame({"transfer_id": [f"t{i}" for i in range(1050)], "amount": 1.5})
    data = frame_bytes(frame)
    assert pq.ParquetFile(io.BytesIO(data)).metadata.num_row_groups == 11
    pd.testing.assert_frame_equal(read_frame(data), frame)
    assert frame_bytes(frame) == data  # deterministic


def test_a_history_without_valid_transfers_stores_no_test_set(tmp_path):
    from cashmatch.adapters.local.blobstore import DirectoryBlobStore

    store = DatasetStore(DirectoryBlobStore(tmp_path))
    empty = pd.DataFrame({"transfer_id": pd.Series(dtype=str), "month": pd.Series(dtype=str)})

    def refuse() -> None:
        raise RuntimeError("nothing valid")

    with pytest.raises(RuntimeError, match="nothing valid"):
        store.freeze_test_parts(
            [Slice(empty, empty, empty)],
            backfill_until="2025-01",
            caused_by="e",
            before_write=refuse,
        )
    assert store.test_manifest() is None
    assert not store.blobs.list("datasets/")
