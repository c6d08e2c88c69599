"""gcp-storage-emulator in process, with the generation preconditions it does not check.

The emulator (PyPI `gcp-storage-emulator`) accepts `ifGenerationMatch` and then ignores it, so
compare-and-swap could never fail against it. `PreconditionGuard` wraps its object handlers and
answers 412 the way Cloud Storage does. The emulator serves one request at a time, so the check
and the write that follows it cannot interleave with another request.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import pytest
from gcp_storage_emulator import server as emulator_server
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects
from gcp_storage_emulator.server import create_server

Handler = Callable[..., Any]

_CONDITION_NOT_MET = "At least one of the pre-conditions you specified did not hold."


def _query_int(request: Any, name: str) -> int | None:
    values = request.query.get(name)
    return int(values[0]) if values else None


def _current_generation(storage: Any, bucket: str, name: str | None) -> int:
    if not name:
        return 0
    try:
        return int(storage.get_file_obj(bucket, name)["generation"])
    except NotFound:
        return 0  # Cloud Storage's convention: generation 0 is "no live object"


def _upload_name(request: Any) -> str | None:
    if "name" in request.query:
        return str(request.query["name"][0])
    data = request.data  # the emulator's Request caches the body, so reading it here is safe
    if isinstance(data, dict):
        meta = data.get("meta", data)
        if isinstance(meta, dict) and meta.get("name"):
            return str(meta["name"])
    return None


def _refuse(response: Any, status: HTTPStatus, message: str) -> None:
    response.status = status
    reason = "conditionNotMet" if status == HTTPStatus.PRECONDITION_FAILED else "notFound"
    response.json(
        {
            "error": {
                "code": status.value,
                "message": message,
                "errors": [{"domain": "global", "reason": reason, "message": message}],
            }
        }
    )


def _violated(request: Any, current: int) -> str | None:
    """Why the request's generation preconditions fail on `current`, or None if they hold."""
    match = _query_int(request, "ifGenerationMatch")
    if match is not None and match != current:
        return f"{_CONDITION_NOT_MET} (generation is {current}, expected {match})"
    not_match = _query_int(request, "ifGenerationNotMatch")
    if not_match is not None and not_match == current:
        return f"{_CONDITION_NOT_MET} (generation is {current})"
    return None


def _guard_write(handler: Handler) -> Handler:
    def guarded(request: Any, response: Any, storage: Any, *args: Any, **kwargs: Any) -> Any:
        # Resumable uploads are checked when they start only: the adapter's writes are small
        # enough to go as one multipart request, which is checked atomically.
        if "upload_id" not in request.query:
            bucket = request.params["bucket_name"]
            current = _current_generation(storage, bucket, _upload_name(request))
            problem = _violated(request, current)
            if problem:
                return _refuse(response, HTTPStatus.PRECONDITION_FAILED, problem)
        return handler(request, response, storage, *args, **kwargs)

    return guarded


def _guard_object(handler: Handler) -> Handler:
    def guarded(request: Any, response: Any, storage: Any, *args: Any, **kwargs: Any) -> Any:
        if "softDeleted" not in request.query:
            bucket, name = request.params["bucket_name"], request.params["object_id"]
            current = _current_generation(storage, bucket, name)
            wanted = _query_int(request, "generation")
            # Without object versioning only the live generation exists.
            if current and wanted is not None and wanted != current:
                return _refuse(response, HTTPStatus.NOT_FOUND, f"no generation {wanted}")
            problem = _violated(request, current) if current else None
            if problem:
                return _refuse(response, HTTPStatus.PRECONDITION_FAILED, problem)
        return handler(request, response, storage, *args, **kwargs)

    return guarded


class PreconditionGuard:
    """Swaps the emulator's object handlers for checking ones, and back."""

    def __init__(self) -> None:
        self._wrapped = {
            objects.insert: _guard_write(objects.insert),
            objects.get: _guard_object(objects.get),
            objects.download: _guard_object(objects.download),
            objects.delete: _guard_object(objects.delete),
        }
        self._undo: list[tuple[dict[str, Handler], str, Handler]] = []

    def install(self) -> None:
        """Route the emulator's requests through the checking handlers (module-wide)."""
        for _, methods in emulator_server.HANDLERS:
            for method, handler in list(methods.items()):
                if handler in self._wrapped:
                    methods[method] = self._wrapped[handler]
                    self._undo.append((methods, method, handler))

    def uninstall(self) -> None:
        """Restore the emulator's own handlers."""
        for methods, method, handler in reversed(self._undo):
            methods[method] = handler
        self._undo.clear()


@dataclass
class GcsEmulator:
    """A running emulator: its base URL (for STORAGE_EMULATOR_HOST) and its bucket."""

    host: str
    bucket: str
    stop: Callable[[], None]

    def client(self) -> Any:
        """A google-cloud-storage client talking to this emulator with anonymous credentials."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        with _environ(STORAGE_EMULATOR_HOST=self.host):
            return storage.Client(project="test", credentials=AnonymousCredentials())


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start_gcs_emulator(bucket: str = "cashmatch-test") -> GcsEmulator:
    """Start the emulator on 127.0.0.1 (a free port), in memory, with `bucket` and the guard."""
    guard = PreconditionGuard()
    guard.install()
    server = create_server("127.0.0.1", 0, in_memory=True, default_bucket=bucket)
    # A daemon thread, so a test run that dies early cannot hang at interpreter exit.
    server._api.daemon = True
    server.start()
    port = server._api._httpd.server_address[1]  # only reachable through private attributes

    def stop() -> None:
        server.stop()
        guard.uninstall()

    return GcsEmulator(host=f"http://127.0.0.1:{port}", bucket=bucket, stop=stop)


_STASH_KEY = pytest.StashKey[GcsEmulator]()


def session_gcs_emulator(config: pytest.Config) -> GcsEmulator:
    """One emulator per test session, started on first use and stopped when pytest ends."""
    emulator = config.stash.get(_STASH_KEY, None)
    if emulator is None:
        emulator = start_gcs_emulator()
        config.stash[_STASH_KEY] = emulator
        config.add_cleanup(emulator.stop)
    return emulator
