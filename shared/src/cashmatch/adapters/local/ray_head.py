"""The workspace's detached local Ray head: started once, found again, token-authenticated, stopped.

`ray start --head` on loopback, its address and ports recorded in `<workspace>/serving/ray.json`
so that a later short-lived process (a CLI roll-out) connects to the same cluster. Ray's
session directory holds unix sockets whose paths must stay under ~107 bytes, so it lives in a
short /tmp folder named after the workspace, not in the workspace itself.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess  # nosec B404 # used for one fixed `ray start` argv
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
STATE_FILE = "serving/ray.json"
# Ray computes its node IP at import from this; "0" keeps every Ray server on loopback.
_LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
# Every head runs with Ray's token auth, its token a secret of the workspace (a 0600 file): on
# a shared machine another user can reach 127.0.0.1 too, and a Ray head runs whatever code a
# client sends it. Set explicitly for the head and our drivers, never left to Ray, which decides
# by whether ~/.ray/auth_token exists (a developer's own `ray.init()` writes one).
# (A path, not the token itself: hence the two linters' markers.)
TOKEN_FILE = "serving/ray-auth-token"  # noqa: S105 # nosec B105
# Serve's proxy reaches replicas over gRPC instead of Ray actor calls: ~35% more single matches
# per second at 16 clients here, the same fault behaviour (services/matcher/README.md).
# A value already in the environment wins, so RAY_SERVE_PROXY_USE_GRPC=0 turns it off.
SERVE_ENV_DEFAULTS = {"RAY_SERVE_PROXY_USE_GRPC": "1"}


class HeadState(BaseModel):
    """Where the detached Ray head of a workspace listens; written when it starts."""

    address: str
    gcs_port: int
    temp_dir: str
    serve_port: int
    started_at: dt.datetime
    # How drivers authenticate to it; a head recorded before token auth has "none".
    auth: Literal["none", "token"] = "none"


# the head ----------------------------------------------------------------------------
def _state_path(workspace: Path) -> Path:
    return workspace / STATE_FILE


def read_head(workspace: Path) -> HeadState | None:
    """The recorded head of a workspace, or None."""
    path = _state_path(workspace)
    if not path.is_file():
        return None
    return HeadState.model_validate_json(path.read_text())


def _temp_dir(workspace: Path) -> str:
    digest = hashlib.sha256(str(workspace).encode()).hexdigest()[:12]
    return f"/tmp/cashmatch-ray-{digest}"  # noqa: S108 (short on purpose: unix socket paths) # nosec B108


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((LOOPBACK, port)) == 0


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextlib.contextmanager
def _workspace_lock(workspace: Path) -> Iterator[None]:
    lock = workspace / "serving" / ".lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def auth_token_path(workspace: Path) -> Path:
    """The workspace's Ray token, made (readable by its owner only) the first time it is asked."""
    path = workspace / TOKEN_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp makes a new file readable by its owner only: the secret is never readable by
        # others, not even for a moment; linked in whole, so nobody reads half a token.
        fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(16))
            with contextlib.suppress(FileExistsError):  # a racing writer's token stands
                os.link(partial, path)
        finally:
            os.unlink(partial)
    return path


def auth_environment(workspace: Path) -> dict[str, str]:
    """Token auth with the workspace's token, for its head and every driver that connects."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(auth_token_path(workspace))}


def serve_environment() -> dict[str, str]:
    """The Serve settings heads start with: SERVE_ENV_DEFAULTS, each overridable by the
    environment."""
    return {name: os.environ.get(name, value) for name, value in SERVE_ENV_DEFAULTS.items()}


def ray_environment(workspace: Path) -> dict[str, str]:
    """Environment for the workspace's Ray head and its workers.

    Loopback node IP, no usage stats, token auth with the workspace's token (as our drivers,
    `_connect`), Serve's proxy-to-replica transport. The workers run this interpreter, so
    `cashmatch` (the Serve app's import path) is importable there as it is here.
    """
    env = {**os.environ, **serve_environment(), **_LOOPBACK_ENV, **auth_environment(workspace)}
    env.pop("RAY_AUTH_TOKEN", None)  # it would win over the workspace's token file
    return env


def ensure_head(workspace: Path, serve_port: int) -> HeadState:
    """The workspace's running head; started detached (`ray start --head`) when there is none."""
    workspace.mkdir(parents=True, exist_ok=True)
    with _workspace_lock(workspace):
        head = read_head(workspace)
        if head is not None and head.auth == "token" and _listening(head.gcs_port):
            return head
        if head is not None:  # dead, or started without token auth: clear what is left of it
            _kill_head_processes(head)
        return _start_head(workspace, serve_port)


def _start_head(workspace: Path, serve_port: int) -> HeadState:
    gcs, client, agent, agent_grpc, runtime_env, metrics, node_manager, objects = _free_ports(8)
    temp_dir = _temp_dir(workspace)
    command = [
        str(Path(sys.executable).parent / "ray"),
        "start",
        "--head",
        f"--node-ip-address={LOOPBACK}",
        f"--port={gcs}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
        f"--num-cpus={os.cpu_count() or 2}",
        f"--ray-client-server-port={client}",
        f"--dashboard-agent-listen-port={agent}",
        f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--runtime-env-agent-port={runtime_env}",
        f"--metrics-export-port={metrics}",
        f"--node-manager-port={node_manager}",
        f"--object-manager-port={objects}",
    ]
    log.info("starting a local Ray head: %s", " ".join(command))
    done = subprocess.run(  # noqa: S603 (fixed argv, no shell) # nosec B603
        command,
        cwd=workspace,
        env=ray_environment(workspace),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-4000:]
        raise RuntimeError(f"`ray start --head` failed:\n{output}")
    head = HeadState(
        address=f"{LOOPBACK}:{gcs}",
        gcs_port=gcs,
        temp_dir=temp_dir,
        serve_port=serve_port,
        started_at=dt.datetime.now(dt.UTC),
        auth="token",
    )
    path = _state_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head.model_dump_json(indent=2))
    return head


def _connect(head: HeadState, workspace: Path) -> None:
    for name, value in _LOOPBACK_ENV.items():
        os.environ.setdefault(name, value)
    os.environ.update(auth_environment(workspace))
    os.environ.pop("RAY_AUTH_TOKEN", None)
    import ray
    from ray._private import ray_constants
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

    # The constant is read once at import; if Ray was imported before the variable was set,
    # this process would still resolve 127.0.0.1 to the external address and never connect.
    ray_constants.ENABLE_RAY_CLUSTER = False
    if ray.is_initialized():
        connected = ray.get_runtime_context().gcs_address
        if connected == head.address:
            return
        raise RuntimeError(f"this process is already connected to Ray at {connected}")
    # Ray reads the auth mode and the token once per process and keeps them: this process may
    # have imported Ray, or used another workspace's head, before.
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
    ray.init(
        address=head.address,
        namespace="cashmatch",
        logging_level=logging.WARNING,
        log_to_driver=False,
    )


def stop_local_serving(workspace: Path) -> str:
    """Shut Serve down, disconnect, and end the workspace's Ray head and every process of it."""
    workspace = workspace.expanduser().resolve()
    with _workspace_lock(workspace):
        head = read_head(workspace)
        if head is None:
            return "no local serving was running"
        # A head from before token auth would refuse this process; it is killed below anyway.
        if head.auth == "token" and _listening(head.gcs_port):
            with contextlib.suppress(Exception):  # a half-dead head is killed below anyway
                _connect(head, workspace)
                from ray import serve

                serve.shutdown()
        import ray

        if ray.is_initialized():
            ray.shutdown()
        ended = _kill_head_processes(head)
        _state_path(workspace).unlink(missing_ok=True)
        shutil.rmtree(head.temp_dir, ignore_errors=True)
    return f"stopped the Ray head at {head.address} ({ended} processes)"


# processes ---------------------------------------------------------------------------
def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process we can read."""
    out: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out[int(entry.name)] = (ppid, cmdline)
    return out


def head_processes(head: HeadState) -> list[int]:
    """Pids of the head's processes: those naming its session folder or GCS address, and their
    descendants (workers, agents, Serve actors); never this process or its ancestors."""
    table = _processes()
    ours = {os.getpid()}
    pid = os.getpid()
    while pid in table and table[pid][0] > 1:
        pid = table[pid][0]
        ours.add(pid)
    marks = (head.temp_dir, f"{head.address} ", f"{head.address},", f"={head.address}")
    found = {p for p, (_, cmd) in table.items() if any(m in cmd + " " for m in marks)}
    grew = True
    while grew:
        children = {p for p, (ppid, _) in table.items() if ppid in found} - found
        found |= children
        grew = bool(children)
    return sorted(found - ours)


def _kill_head_processes(head: HeadState, grace_s: float = 8.0) -> int:
    pids = head_processes(head)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if _alive(p)]
    for pid in alive:  # gcs_server and the autoscaler monitor may ignore SIGTERM for a while
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
