"""Datasets in the blob store: per-month training slices, the frozen test set, manifests.

Layout (keys):
  datasets/months/YYYY-MM/{transfers,invoices,matches,quarantine}.parquet   training slice
  datasets/test/{transfers,invoices,matches}.parquet + datasets/test/manifest.json   frozen
  datasets/manifests/YYYY-MM.json   what the dataset of a month consists of (its version = hash)
Frames are written before the manifest that names them, so a manifest never points at a
missing or half-written file.

Parquet files are written in row groups of at most `ROW_GROUP_ROWS` rows: a reader can go
through a big month a row group at a time, and the frozen test set is written month by month
(`freeze_test_parts`), each month's rows appended as row groups, so the collector's backfill
holds one month at a time instead of the whole history.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cashmatch.domain.dataset.slices import FRAMES, Slice
from cashmatch.domain.errors import PermanentError
from cashmatch.ports import BlobNotFound, BlobStore, PreconditionFailed

TEST_PREFIX = "datasets/test"
# Rows per Parquet row group. A file of at most this many rows is one row group, byte for byte
# what it was before row groups were set (so datasets up to 100k rows a frame keep their
# versions); a bigger one is a sequence of them.
ROW_GROUP_ROWS = 100_000


def frame_bytes(frame: pd.DataFrame) -> bytes:
    """Parquet bytes of a frame, deterministic for equal content."""
    buffer = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(
        buffer, index=False, compression="zstd", row_group_size=ROW_GROUP_ROWS
    )
    return buffer.getvalue()


if TYPE_CHECKING:  # the matching package pulls its libraries in; only the trainer has them
    from cashmatch.domain.matching.batches import MonthBatch


class _PartsWriter:
    """One Parquet file written part by part (each part's rows as row groups), in memory as
    compressed bytes only; every part is cast to the first one's schema, so a column that is
    all-missing in one month keeps the type the others give it."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0

    def add(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.buffer, table.schema, compression="zstd")
        else:
            table = table.cast(self.writer.schema)
        self.writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.rows += len(frame)

    def close(self) -> bytes:
        if self.writer is None:
            raise ValueError("no parts were written")
        self.writer.close()
        return self.buffer.getvalue()


def read_frame(data: bytes) -> pd.DataFrame:
    """A frame from Parquet bytes."""
    return pd.read_parquet(io.BytesIO(data))


def digest(data: bytes) -> str:
    """sha256 hex of bytes."""
    return hashlib.sha256(data).hexdigest()


class DatasetStore:
    """Reads and writes the collector's outputs through a BlobStore."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    def _write_frames(
        self, prefix: str, part: Slice, extra: dict[str, pd.DataFrame]
    ) -> dict[str, str]:
        digests = {}
        for name, frame in {**{n: getattr(part, n) for n in FRAMES}, **extra}.items():
            data = frame_bytes(frame)
            self.blobs.put(f"{prefix}/{name}.parquet", data)
            digests[name] = digest(data)
        return digests

    def _read_frames(self, prefix: str) -> Slice:
        return Slice(*(read_frame(self.blobs.get(f"{prefix}/{n}.parquet").data) for n in FRAMES))

    # the frozen test set ---------------------------------------------------
    def test_manifest(self) -> dict[str, Any] | None:
        """The frozen test set's manifest, or None before the first run."""
        try:
            return json.loads(self.blobs.get(f"{TEST_PREFIX}/manifest.json").data)
        except BlobNotFound:
            return None

    def freeze_test_set(
        self, part: Slice, *, backfill_until: str, caused_by: str
    ) -> tuple[dict[str, Any], bool]:
        """Write the test set once; if another run froze it first, return that one unchanged."""
        existing = self.test_manifest()
        if existing is not None:
            return existing, False
        digests = self._write_frames(TEST_PREFIX, part, {})
        rows = {n: len(getattr(part, n)) for n in FRAMES}
        return self._freeze_manifest(part.months(), rows, digests, backfill_until, caused_by)

    def freeze_test_parts(
        self,
        parts: Iterable[Slice],
        *,
        backfill_until: str,
        caused_by: str,
        before_write: Callable[[], None] = lambda: None,
    ) -> tuple[dict[str, Any], bool]:
        """`freeze_test_set` for a test set given month by month: each part's rows are appended
        to the files as row groups and let go, so only one month is in memory at a time.
        `before_write` runs after the last part is read and before anything is stored (it may
        raise to store nothing)."""
        existing = self.test_manifest()
        if existing is not None:
            return existing, False
        writers = {n: _PartsWriter() for n in FRAMES}
        months: set[str] = set()
        for part in parts:
            for name in FRAMES:
                writers[name].add(getattr(part, name))
            months.update(part.transfers["month"].unique().tolist())
        before_write()  # the caller's last word, once every part was read
        digests = {}
        for name, writer in writers.items():
            data = writer.close()
            self.blobs.put(f"{TEST_PREFIX}/{name}.parquet", data)
            digests[name] = digest(data)
        rows = {n: w.rows for n, w in writers.items()}
        return self._freeze_manifest(sorted(months), rows, digests, backfill_until, caused_by)

    def _freeze_manifest(
        self,
        months: list[str],
        rows: dict[str, int],
        digests: dict[str, str],
        backfill_until: str,
        caused_by: str,
    ) -> tuple[dict[str, Any], bool]:
        body = {
            "months": months,
            "backfill_until": backfill_until,
            "rows": rows,
            "digests": digests,
            "caused_by": caused_by,
        }
        body["version"] = (
            "test-" + digest(json.dumps(body["digests"], sort_keys=True).encode())[:12]
        )
        try:
            self.blobs.put(
                f"{TEST_PREFIX}/manifest.json",
                json.dumps(body, indent=2, sort_keys=True).encode(),
                if_generation_match=0,
            )
        except PreconditionFailed:
            # A concurrent first run won; its frames may have overwritten ours with equal
            # content (the split is deterministic), so its manifest stands.
            manifest = self.test_manifest()
            assert manifest is not None
            return manifest, False
        return body, True

    def test_transfer_ids(self) -> set[str]:
        """Ids of the frozen test set's transfers (its transfers file only, verified)."""
        manifest = self.test_manifest()
        if manifest is None:
            raise FileNotFoundError("no frozen test set yet: close a month first")
        data = self.blobs.get(f"{TEST_PREFIX}/transfers.parquet").data
        if digest(data) != manifest["digests"]["transfers"]:
            raise ValueError("frozen test set file transfers.parquet does not match its manifest")
        ids = pd.read_parquet(io.BytesIO(data), columns=["transfer_id"])["transfer_id"]
        return set(ids.tolist())

    def test_set(self) -> Slice:
        """The frozen test set, verified against its manifest's digests."""
        manifest = self.test_manifest()
        if manifest is None:
            raise FileNotFoundError("no frozen test set yet: close a month first")
        for name in FRAMES:
            data = self.blobs.get(f"{TEST_PREFIX}/{name}.parquet").data
            if digest(data) != manifest["digests"][name]:
                raise ValueError(f"frozen test set file {name}.parquet does not match its manifest")
        return self._read_frames(TEST_PREFIX)

    # training slices ---------------------------------------------------------
    def write_slice(self, month: str, part: Slice, quarantine: pd.DataFrame) -> dict[str, str]:
        """Write (or deterministically rewrite) the training slice of one month.

        Its `slice.json` (digests and row counts) is written last: it marks the slice complete.
        """
        prefix = f"datasets/months/{month}"
        digests = self._write_frames(prefix, part, {"quarantine": quarantine})
        meta = {
            "digests": digests,
            "rows": {n: len(getattr(part, n)) for n in FRAMES} | {"quarantine": len(quarantine)},
        }
        self.blobs.put(f"{prefix}/slice.json", json.dumps(meta, indent=2, sort_keys=True).encode())
        return digests

    def _slice_meta(self, month: str) -> dict[str, Any]:
        return json.loads(self.blobs.get(f"datasets/months/{month}/slice.json").data)

    def slice_digests(self, month: str) -> dict[str, str]:
        """Digests of a month's slice files (as written last)."""
        return {n: self._slice_meta(month)["digests"][n] for n in FRAMES}

    def slice_rows(self, month: str) -> int:
        """Training transfers in a month's slice."""
        return int(self._slice_meta(month)["rows"]["transfers"])

    def slice_months(self) -> list[str]:
        """Months that have a training slice."""
        keys = self.blobs.list("datasets/months/")
        return sorted({k.split("/")[2] for k in keys if k.endswith("/slice.json")})

    def read_slice(self, month: str) -> Slice:
        """The training slice of a month."""
        return self._read_frames(f"datasets/months/{month}")

    def read_quarantine(self, month: str) -> pd.DataFrame:
        """Rows set aside when collecting `month`."""
        return read_frame(self.blobs.get(f"datasets/months/{month}/quarantine.parquet").data)

    # manifests ---------------------------------------------------------------
    def write_manifest(self, month: str, body: dict[str, Any]) -> tuple[str, str]:
        """Write the dataset manifest of `month`; return (uri, version)."""
        version = f"ds-{month}-" + digest(json.dumps(body, sort_keys=True).encode())[:12]
        key = f"datasets/manifests/{month}.json"
        self.blobs.put(
            key, json.dumps({**body, "version": version}, indent=2, sort_keys=True).encode()
        )
        return self.blobs.uri(key), version

    def read_manifest(self, uri: str) -> dict[str, Any]:
        """A dataset manifest by URI; PermanentError when there is none at that URI (another
        store's, a removed or a made-up one): asking again cannot help."""
        try:
            return json.loads(self.blobs.get(self.blobs.key_from_uri(uri)).data)
        except BlobNotFound:
            raise PermanentError(f"no dataset manifest at {uri}") from None
        except ValueError as exc:  # not this store's URI, or not JSON
            raise PermanentError(f"no dataset manifest at {uri}: {exc}") from None

    def training_data(self, manifest: dict[str, Any]) -> Slice:
        """Concatenate the training slices a manifest names, verifying each file's digest."""
        parts = [self._verified_slice(manifest, month) for month in manifest["training_months"]]
        return Slice(
            *(pd.concat([getattr(p, n) for p in parts], ignore_index=True) for n in FRAMES)
        )

    def training_months(self, manifest: dict[str, Any]) -> list[StoredMonth]:
        """The training months a manifest names, each read (and verified) only when loaded:
        the trainer holds one month at a time instead of the concatenated history."""
        return [StoredMonth(self, manifest, m) for m in manifest["training_months"]]

    def _verified_slice(self, manifest: dict[str, Any], month: str) -> Slice:
        prefix = f"datasets/months/{month}"
        frames = []
        for name in FRAMES:
            data = self.blobs.get(f"{prefix}/{name}.parquet").data
            if digest(data) != manifest["slices"][month][name]:
                raise ValueError(
                    f"training slice {month}/{name} changed since manifest {manifest['version']}"
                )
            frames.append(read_frame(data))
            del data
        return Slice(*frames)


class StoredMonth:
    """One training month of a manifest in the blob store, as the trainer's `MonthSource`."""

    def __init__(self, store: DatasetStore, manifest: dict[str, Any], month: str) -> None:
        self.store = store
        self.manifest = manifest
        self.month = month
        rows = store._slice_meta(month)["rows"]
        self.n_transfers = int(rows["transfers"])
        self.labelled = int(rows["matches"]) > 0

    def load(self) -> MonthBatch:
        """The month's batch, read now, its files checked against the manifest's digests."""
        # Here, not at the top: every service imports this module, and importing anything of
        # `domain.matching` runs its package, which needs rapidfuzz and scikit-learn (the
        # trainer's member has them, the collector's does not: tests/unit/test_settings_imports.py).
        from cashmatch.domain.matching.batches import MonthBatch

        part = self.store._verified_slice(self.manifest, self.month)
        return MonthBatch(
            month=self.month,
            transfers=part.transfers.drop(columns="month"),
            invoices=part.invoices.drop(columns="month"),
            matches=part.matches.drop(columns="month"),
        )
