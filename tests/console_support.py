"""What the console's tests share: a workspace with a run chain (made once per session, copied
per test), the console served on a free loopback port in a thread, and a snapshot of everything
a workspace holds (blobs and bus) to prove what a request changed."""

from __future__ import annotations

import contextlib
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cashmatch.settings import Settings, load_settings

# Months the world closes: two real ones (a champion waiting for approval, then a candidate
# judged against it) and one the warehouse has no transfers for, which the collector parks.
CLOSED = ("2025-03", "2025-04")
DEAD_MONTH = "2019-01"


@dataclass(frozen=True)
class World:
    """A workspace after the chain ran, with approval required."""

    workspace: Path
    warehouse: Path

    def settings(self, **overrides: Any) -> Settings:
        return load_settings(
            workspace=self.workspace,
            warehouse=str(self.warehouse),
            approval_required=True,
            min_backoff_s=0.0,
            **overrides,
        )

    def env(self) -> dict[str, str]:
        """CASHMATCH_* variables for the CLI run as a person runs it on this workspace."""
        return {
            "CASHMATCH_WORKSPACE": str(self.workspace),
            "CASHMATCH_WAREHOUSE": str(self.warehouse),
            "CASHMATCH_APPROVAL_REQUIRED": "true",
            "CASHMATCH_MIN_BACKOFF_S": "0",
        }

    def copy(self, to: Path) -> World:
        """The same world in another folder (nothing in it is running)."""
        shutil.copytree(self.workspace, to)
        token = to / "console" / "token"
        if token.exists():
            token.unlink()
        return World(to, self.warehouse)


def build_world(root: Path, warehouse: Path) -> World:
    """Close CLOSED and DEAD_MONTH in process and run the chain until idle after each."""
    from cashmatch.bootstrap import bootstrap
    from cashmatch.domain.events import MonthClosed, make_event
    from cashmatch.entrypoints.service_table import HANDLERS
    from cashmatch.service_layer.dispatch import run_until_idle
    from cashmatch.service_layer.publishing import publish_event

    world = World(root / "workspace", warehouse)
    ports = bootstrap(world.settings())
    for month in (*CLOSED, DEAD_MONTH):
        publish_event(ports.bus, make_event(MonthClosed(month=month), source="/test"))
        run_until_idle(ports, HANDLERS, timeout_s=300)
    ports.bus.close()  # type: ignore[attr-defined]
    return world


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_console(settings: Settings) -> Iterator[str]:
    """The console (as `cashmatch ui` builds it) on a free loopback port; yields its base URL."""
    import uvicorn

    from cashmatch.entrypoints.console.server import build_app

    port = free_port()
    app = build_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the console did not answer on /healthz")
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        for ports in app.state.ports:
            ports.bus.close()


def snapshot(workspace: Path) -> dict[str, Any]:
    """Every blob's bytes and every row of the bus's tables."""
    blobs = workspace / "blobs"
    files = {
        p.relative_to(blobs).as_posix(): p.read_bytes()
        for p in sorted(blobs.rglob("*"))
        if p.is_file() and ".locks" not in p.parts and not p.name.endswith(".tmp")
    }
    with contextlib.closing(sqlite3.connect(workspace / "bus.sqlite3")) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = {t: sorted(map(repr, db.execute(f"SELECT * FROM {t}"))) for t in tables}
    return {"files": files, "bus": rows}
