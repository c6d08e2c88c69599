"""BlobStore on a Cloud Storage bucket (google-cloud-storage), generations for compare-and-swap."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as gexc
from google.cloud.storage.retry import DEFAULT_RETRY

from cashmatch.ports import Blob, BlobNotFound, PreconditionFailed

if TYPE_CHECKING:
    from google.cloud.storage import Bucket, Client

# A reader loses the race with a writer only when the object is replaced between reading its
# metadata and its bytes; a handful of retries is plenty, an endless loop would hide a bug.
_READ_ATTEMPTS = 50  # a hot object may be replaced between metadata and bytes


class GcsBlobStore:
    """Objects in `bucket_name`, under an optional `prefix` (a folder of the bucket).

    Cloud Storage generations are the store's generations, so `if_generation_match` is the
    service's own precondition: 0 means "only if absent", and a mismatch (HTTP 412) raises
    PreconditionFailed. A single object write is atomic on Cloud Storage.
    """

    def __init__(
        self, client: Client, bucket_name: str, prefix: str = "", *, timeout_s: float = 60.0
    ) -> None:
        if not bucket_name:
            raise ValueError("a bucket name is required")
        self.client = client
        self.bucket_name = bucket_name
        prefix = prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.timeout_s = timeout_s
        self._bucket: Bucket = client.bucket(bucket_name)

    def _name(self, key: str) -> str:
        # The same key rules as the directory store, so a key valid on one stack is valid on both.
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"invalid blob key {key!r}")
        return self.prefix + key

    def put(self, key: str, data: bytes, *, if_generation_match: int | None = None) -> int:
        """Write in one request; the generation check is done by Cloud Storage itself."""
        blob = self._bucket.blob(self._name(key))
        kwargs: dict[str, Any] = {}
        if if_generation_match is not None:
            kwargs["if_generation_match"] = if_generation_match
        try:
            # Retrying is safe either way: an unconditional write of the same bytes is
            # idempotent, and a conditional one cannot be applied twice. (A retry after a lost
            # response can report PreconditionFailed for a write that landed; callers of CAS
            # re-read the object, as the registry does, so they see their own write.)
            blob.upload_from_string(
                data,
                content_type="application/octet-stream",
                timeout=self.timeout_s,
                retry=DEFAULT_RETRY,
                **kwargs,
            )
        except gexc.PreconditionFailed:
            raise PreconditionFailed(
                f"{self.uri(key)}: generation is not {if_generation_match}"
            ) from None
        return int(blob.generation or 0)

    def get(self, key: str) -> Blob:
        """Bytes and their generation: read the metadata, then exactly that generation's bytes."""
        name = self._name(key)
        for attempt in range(_READ_ATTEMPTS):
            blob = self._bucket.get_blob(name, timeout=self.timeout_s, retry=DEFAULT_RETRY)
            if blob is None:
                raise BlobNotFound(key)
            generation = int(blob.generation or 0)
            try:
                data = blob.download_as_bytes(
                    if_generation_match=generation, timeout=self.timeout_s, retry=DEFAULT_RETRY
                )
            except (gexc.PreconditionFailed, gexc.NotFound):
                # Replaced or deleted in between: back off a little, read the metadata again.
                time.sleep(min(0.005 * (attempt + 1), 0.1))
                continue
            return Blob(data, generation)
        raise RuntimeError(f"{self.uri(key)} kept changing while being read")

    def exists(self, key: str) -> bool:
        """True when an object is stored at `key`."""
        blob = self._bucket.blob(self._name(key))
        return bool(blob.exists(timeout=self.timeout_s, retry=DEFAULT_RETRY))

    def list(self, prefix: str) -> list[str]:
        """Keys starting with `prefix` (a string prefix), sorted; follows every result page."""
        names = self.client.list_blobs(
            self._bucket,
            prefix=self.prefix + prefix,
            fields="items(name),nextPageToken",
            timeout=self.timeout_s,
            retry=DEFAULT_RETRY,
        )
        return sorted(blob.name[len(self.prefix) :] for blob in names)

    def delete(self, key: str) -> None:
        """Remove an object; absent is fine."""
        with contextlib.suppress(gexc.NotFound):
            self._bucket.blob(self._name(key)).delete(timeout=self.timeout_s, retry=DEFAULT_RETRY)

    def uri(self, key: str) -> str:
        """gs://bucket/object URI of the key."""
        return f"gs://{self.bucket_name}/{self._name(key)}"

    def key_from_uri(self, uri: str) -> str:
        """Key of a gs:// URI under this store's bucket and prefix."""
        start = f"gs://{self.bucket_name}/{self.prefix}"
        if not uri.startswith(start) or len(uri) == len(start):
            raise ValueError(f"{uri} is not in the blob store at {start}")
        return uri[len(start) :]
