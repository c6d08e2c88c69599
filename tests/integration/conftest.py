"""Emulators for the gcp adapters and the port contract suites, started by the tests themselves
on 127.0.0.1.

- Cloud Storage: gcp-storage-emulator in process, with a guard that answers 412 to failed
  generation preconditions (the emulator ignores them); one per session.
- BigQuery: bqemulator in a child process, through `tests.fakes.bq_launcher` (offline: no
  spatial extension download; loads under 5 MiB allowed); one per session.
- Pub/Sub: the in-process fake gRPC server of `tests.fakes.pubsub_server`; one per test, so
  every test starts with no topics and no messages.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.gcs_emulator import GcsEmulator, session_gcs_emulator
from tests.fakes.pubsub_server import PubSubServer, start_pubsub_server

REPO = Path(__file__).resolve().parents[2]
BQ_PROJECT = "test-project"
_BQ_START_TIMEOUT_S = 90.0  # ~2 s on an idle machine; generous for a busy CI runner


@pytest.fixture(scope="session")
def gcs_emulator(request: pytest.FixtureRequest) -> GcsEmulator:
    """The session's Cloud Storage emulator (shared with the blob store contract suite)."""
    return session_gcs_emulator(request.config)


@pytest.fixture
def gcs_store(gcs_emulator: GcsEmulator) -> Any:
    """A GcsBlobStore in a folder of its own."""
    from cashmatch.adapters.gcp.blobstore import GcsBlobStore

    return GcsBlobStore(gcs_emulator.client(), gcs_emulator.bucket, prefix=uuid.uuid4().hex)


@dataclass
class BigQueryEmulator:
    """A running bqemulator: `host` is what BIGQUERY_EMULATOR_HOST should be."""

    host: str
    project: str

    def client(self) -> Any:
        """A google-cloud-bigquery client for this emulator (anonymous credentials)."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(
            project=self.project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.host),
        )


@pytest.fixture(scope="session")
def bq_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigQueryEmulator]:
    """bqemulator in a child process on 127.0.0.1; its log is kept in the session's tmp dir."""
    import bqemulator  # noqa: F401  (a dev dependency in uv.lock: missing is a broken install)

    log_path = tmp_path_factory.mktemp("bqemulator") / "emulator.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.bq_launcher", BQ_PROJECT],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        port = _wait_for_ready(process, log_path)
        yield BigQueryEmulator(host=f"http://127.0.0.1:{port}", project=BQ_PROJECT)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_ready(process: subprocess.Popen[bytes], log_path: Path) -> int:
    deadline = time.monotonic() + _BQ_START_TIMEOUT_S
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith("READY "):
                return int(line.split()[1])
        if process.poll() is not None:
            break
        time.sleep(0.05)
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
    raise RuntimeError(f"bqemulator did not start (exit code {process.poll()}):\n{tail}")


@pytest.fixture
def pubsub_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[PubSubServer]:
    """A fresh fake Pub/Sub server; PUBSUB_EMULATOR_HOST points the real clients at it."""
    server = start_pubsub_server()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", server.host)
    try:
        yield server
    finally:
        server.stop()
