"""BlobStore on a directory: atomic writes by rename, generations for compare-and-swap."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cashmatch.ports import Blob, BlobNotFound, PreconditionFailed

_LOCKS = ".locks"


class DirectoryBlobStore:
    """Objects as files under `root`; a key is a relative path with '/' separators.

    The generation of an object is its file's mtime in nanoseconds, forced to grow on every
    write of the same key, so `if_generation_match` works like Cloud Storage's. Conditional
    writes hold a per-key lock file (flock) so two processes cannot both win.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or ".." in key.split("/") or key.startswith(_LOCKS):
            raise ValueError(f"invalid blob key {key!r}")
        return self.root / key

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        lock_path = self.root / _LOCKS / (key.replace("/", "__") + ".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @staticmethod
    def _generation(path: Path) -> int:
        try:
            return path.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def put(self, key: str, data: bytes, *, if_generation_match: int | None = None) -> int:
        """Write atomically (temp file + fsync + rename); check the generation under a lock."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked(key):
            current = self._generation(path)
            if if_generation_match is not None and current != if_generation_match:
                raise PreconditionFailed(
                    f"{key}: generation is {current}, expected {if_generation_match}"
                )
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                # A generation must change even when two writes land in the same clock tick.
                new_generation = max(time.time_ns(), current + 1)
                os.utime(tmp, ns=(new_generation, new_generation))
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        return new_generation

    def get(self, key: str) -> Blob:
        """Read bytes and generation from one open file, so the two always agree."""
        path = self._path(key)
        try:
            with open(path, "rb") as handle:
                generation = os.fstat(handle.fileno()).st_mtime_ns
                return Blob(handle.read(), generation)
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def exists(self, key: str) -> bool:
        """True when an object is stored at `key`."""
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        """Keys starting with `prefix` (a string prefix, as in Cloud Storage), sorted; temp files
        of writes in flight are not listed."""
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        search_root = self.root / folder
        if not search_root.is_dir():
            return []
        keys = []
        for path in search_root.rglob("*"):
            if not path.is_file() or path.name.endswith(".tmp"):
                continue
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix) and not key.startswith(_LOCKS):
                keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        """Remove an object; absent is fine."""
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def uri(self, key: str) -> str:
        """file:// URI of the object."""
        return self._path(key).as_uri()

    def key_from_uri(self, uri: str) -> str:
        """Key of a file:// URI under this store's root."""
        prefix = self.root.as_uri() + "/"
        if not uri.startswith(prefix):
            raise ValueError(f"{uri} is not in the blob store at {self.root}")
        return uri[len(prefix) :]
