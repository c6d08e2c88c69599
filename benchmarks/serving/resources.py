"""Where the CPU goes and how much memory the paths hold, read from /proc (Linux).

For each single-match row: the CPU milliseconds per answered request of the client, Serve's
proxy, the replicas, the uvicorn server and the rest of Ray, and how busy the cores were.
Counting per process, not by wall time, shows what each hop costs even when the cores are
shared. Memory is RSS and PSS: PSS shares the pages Ray's processes have in common fairly.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.serving.load import Run

_TICK = os.sysconf("SC_CLK_TCK")
ROLES = ("client", "proxy", "replica", "server", "rest of Ray")


def memory_of(pids: list[int]) -> tuple[float, float]:
    """(RSS, PSS) in MiB summed over processes; PSS shares pages fairly between them."""
    rss = pss = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
    return rss / 1024, pss / 1024


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process so far; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def _machine_busy_seconds() -> float:
    """CPU seconds all cores spent on anything but idle and I/O wait."""
    counts = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(counts) - counts[3] - counts[4]) / _TICK


def process_role(pid: int) -> str:
    """What a process is, from the title Ray gives its workers."""
    if pid == os.getpid():
        return "client"
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return "gone"
    if "ProxyActor" in title:
        return "proxy"
    if "ServeReplica:" in title:
        return "replica"
    return "rest of Ray"


@dataclass
class CpuShares:
    """CPU milliseconds per answered request, by role, and how busy the machine was."""

    per_request_ms: dict[str, float]
    busy_percent: float

    def row(self) -> list[str]:
        """Machine busy %, total and each role's ms of CPU per request."""
        total = sum(self.per_request_ms.values())
        roles = [self.per_request_ms.get(r, 0.0) for r in ROLES]
        return [f"{self.busy_percent:.0f}%", f"{total:.2f}", *(f"{v:.2f}" for v in roles)]


def measure_cpu(
    pids: Callable[[], dict[int, str]], work: Callable[[], Run]
) -> tuple[Run, CpuShares]:
    """Run `work` and charge the CPU each process used meanwhile to its role.

    Processes started during the run (a replica the autoscaler adds) are not counted: most
    of what they use then is loading the model, not answering.
    """
    before = {pid: (role, _cpu_seconds(pid)) for pid, role in pids().items()}
    busy_before, started = _machine_busy_seconds(), time.monotonic()
    run = work()
    busy = _machine_busy_seconds() - busy_before
    wall = time.monotonic() - started
    used: dict[str, float] = {}
    for pid, (role, was) in before.items():
        now = _cpu_seconds(pid)
        if was is not None and now is not None:
            used[role] = used.get(role, 0.0) + now - was
    answered = max(1, len(run.latencies))
    shares = CpuShares({r: v / answered * 1000 for r, v in used.items()}, busy / wall * 100)
    return run, shares
