"""(c): the matcher's FastAPI app under plain uvicorn, one process and no Ray.

It runs in a child process, started as the entry script with `--plain-server PORT BLOB_ROOT
VERSION`, so that its CPU and memory are its own (not the load generator's) and it holds
nothing of Ray. The backend answers through `asyncio.to_thread`, as the Serve replica's does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from cashmatch.service_layer.registry import ModelRegistry

LOOPBACK = "127.0.0.1"
# The script that starts this server in a child (see its --plain-server flag).
ENTRY_SCRIPT = Path(__file__).resolve().parents[1] / "serve.py"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def plain_server(port: int, blob_root: str, version: str) -> None:
    """(c): the matcher's FastAPI app under uvicorn, no Ray (run in a child process)."""
    import uvicorn

    from cashmatch.adapters.local.blobstore import DirectoryBlobStore
    from cashmatch.entrypoints.matcher.api import Limits, ThreadedBackend, create_api
    from cashmatch.service_layer.matcher import MatcherService, ServingConfig

    service = MatcherService(ModelRegistry(DirectoryBlobStore(Path(blob_root))))
    service.apply(ServingConfig(model_version=version))

    app = create_api(ThreadedBackend(service), Limits())
    uvicorn.run(app, host=LOOPBACK, port=port, log_level="warning")


@contextlib.contextmanager
def plain_server_process(port: int, blob_root: Path, version: str) -> Iterator[subprocess.Popen]:
    """The plain server in a child process while the block runs; stopped (killed if need be)."""
    plain = subprocess.Popen(
        [sys.executable, str(ENTRY_SCRIPT), "--plain-server", str(port), str(blob_root), version],
    )
    try:
        yield plain
    finally:
        plain.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            plain.wait(timeout=20)
        if plain.poll() is None:
            os.kill(plain.pid, signal.SIGKILL)


def wait_http(url: str, seconds: float = 120) -> None:
    """Until `url` answers 200."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=5).status_code == 200:
                return
        time.sleep(0.3)
    raise TimeoutError(url)
