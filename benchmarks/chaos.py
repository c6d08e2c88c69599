"""Months of the local stack with its worker processes killed and every event delivered again,
against a calm run of the same world: the two workspaces must be the same, byte for byte.

    .venv/bin/python benchmarks/chaos.py [--months 12] [--scale 0.2] [--seed 1]
    (or: make bench-chaos)

Both runs close the same months of one synthetic warehouse (`cashmatch synth`), in order, each
`month.closed` with the same id, and carry every event through one `cashmatch worker` process
per subscription over the on-disk SQLite bus, as `tests/e2e/test_workers.py` does. The chaos
run adds, from a seeded schedule:
  - SIGKILLs: a delivery leased by a worker is, with probability `--kill-rate`, killed at a
    random point of its work (0-100% of how long the calm run took for that service, so
    mid-lease and mostly mid-write); the worker (its whole process group) is killed and
    started again, and the delivery comes back when its lease runs out;
  - duplicates: every delivery is delivered 2-5 times in all; once settled done, it is made
    pending again, as Pub/Sub redelivers when an ack is lost; and every message is published
    a second time with its own id, which the bus must drop.
Then the workspaces are compared (`compare`): every blob (registry records, verdicts, champion
and deployed pointers, datasets and manifests, models, reports, alert marks) and the bus
(the same messages, none lost, none extra, nothing parked that the calm run did not park).
`tests/e2e/test_chaos.py` runs a short form of this in `make test`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import os
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from cashmatch.adapters.local.bus import SqliteEventBus
from cashmatch.domain.events import MonthClosed, make_event
from cashmatch.domain.subscriptions import SUBSCRIPTIONS
from cashmatch.service_layer.publishing import publish_event

# The installed console script, exactly as a person runs it.
CLI = str(Path(sys.executable).with_name("cashmatch"))
# month.closed ids shared by both runs: every later id is derived from its cause's id.
_MONTH_IDS = uuid.UUID("6f1f6c1e-3c55-4a49-9d6f-2a8d6b1f0c11")
# The finance system's clock for those events, fixed for the same reason.
_CLOSED_AT = dt.datetime(2026, 1, 5, 6, 0, tzinfo=dt.UTC)
_POLL_S = 0.02


@dataclass(frozen=True)
class Chaos:
    """What goes wrong in a run, all drawn from `seed`."""

    seed: int = 1
    kill_rate: float = 0.3  # share of leased deliveries killed mid-work
    max_kills_per_delivery: int = 2  # so each delivery still finishes well inside max_attempts
    copies: tuple[int, int] = (2, 5)  # each delivery delivered this many times in all


@dataclass
class RunResult:
    """What a run did and took."""

    workspace: Path
    months: int
    wall_s: float = 0.0
    kills: int = 0
    deliveries: int = 0  # attempts the bus handed out (killed ones included)
    redelivered: int = 0  # done deliveries made pending again
    republished: int = 0  # second publishes of a message, dropped by the bus
    republish_accepted: int = 0  # ...that the bus took as new: must stay 0
    peak_rss_mb: float = 0.0  # the largest worker process
    durations: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    @property
    def duplicates_absorbed(self) -> int:
        return self.redelivered + self.republished


def month_closed_id(month: str) -> str:
    return str(uuid.uuid5(_MONTH_IDS, month))


def worker_env(workspace: Path, warehouse: Path) -> dict[str, str]:
    """The same settings for both runs (none of them reaches an artifact)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASHMATCH_")}
    env.update(
        CASHMATCH_WORKSPACE=str(workspace),
        CASHMATCH_WAREHOUSE=str(warehouse),
        CASHMATCH_SERVING="none",
        # A killed worker's delivery comes back after this; one worker per subscription, so
        # a live worker's lease running out hands its delivery to nobody else.
        CASHMATCH_LEASE_S="2",
        CASHMATCH_MIN_BACKOFF_S="0",
        # Kills and redeliveries count as attempts; the bus must not give up on them.
        CASHMATCH_MAX_ATTEMPTS="30",
    )
    return env


class Workers:
    """One `cashmatch worker` process per subscription, each in its own process group."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: dict[str, subprocess.Popen] = {}
        self.peak_rss_mb = 0.0  # the largest worker's, read before it is killed or stopped
        for name in SUBSCRIPTIONS:
            self.start(name)

    def start(self, name: str) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [CLI, "worker", name, "--poll", "0.05"],
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,  # a kill takes the worker's children (joblib) with it
        )
        log.close()

    def _note_peak(self, proc: subprocess.Popen) -> None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except OSError:
            return
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                self.peak_rss_mb = max(self.peak_rss_mb, int(line.split()[1]) / 1024)

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        self._note_peak(proc)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        self.start(name)

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"worker(s) died on their own: {dead}; see {self.logs}")

    def stop(self) -> None:
        for proc in self.procs.values():
            self._note_peak(proc)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _deliveries(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT d.id, d.subscription, d.state, d.attempts, m.message_id,"
        " (SELECT count(*) FROM attempts AS a WHERE a.delivery_id = d.id"
        "  AND a.outcome = 'done') AS done"
        " FROM deliveries AS d JOIN messages AS m USING (seq)"
    ).fetchall()


class Driver:
    """Publishes the months, watches the bus file, and injects the faults of `chaos`."""

    def __init__(
        self,
        workspace: Path,
        warehouse: Path,
        months: list[str],
        chaos: Chaos | None,
        expected_s: dict[str, float] | None = None,
    ) -> None:
        self.workspace = workspace
        self.warehouse = warehouse
        self.months = months
        self.chaos = chaos
        self.rng = random.Random(chaos.seed if chaos else 0)
        self.expected_s = expected_s or {}
        self.result = RunResult(workspace=workspace, months=len(months))
        self.seen_leases: dict[tuple[int, int], float] = {}  # (delivery, attempt) → start
        self.kills_of: dict[int, int] = defaultdict(int)
        self.copies: dict[int, int] = {}
        self.kill_at: dict[tuple[int, int], float] = {}
        self.republished: set[str] = set()

    def run(self) -> RunResult:
        self.workspace.mkdir(parents=True)
        logs = self.workspace / "worker-logs"
        logs.mkdir()
        env = worker_env(self.workspace, self.warehouse)
        bus = SqliteEventBus(self.workspace / "bus.sqlite3", SUBSCRIPTIONS)
        conn = sqlite3.connect(self.workspace / "bus.sqlite3", timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        started = time.monotonic()
        workers = Workers(env, logs)
        try:
            for i, month in enumerate(self.months):
                event = make_event(
                    MonthClosed(month=month),
                    source="/finance-system",
                    event_id=month_closed_id(month),
                    now=_CLOSED_AT + dt.timedelta(days=i),
                )
                publish_event(bus, event)
                self._until_settled(conn, bus, workers)
        finally:
            workers.stop()
            self.result.peak_rss_mb = workers.peak_rss_mb
            conn.close()
            bus.close()
        self.result.wall_s = time.monotonic() - started
        with closing(sqlite3.connect(self.workspace / "bus.sqlite3")) as done:
            # Every attempt settles as one row (a killed one as "lease expired" when retaken).
            self.result.deliveries = done.execute(
                "SELECT count(*) FROM attempts WHERE outcome != 'redriven'"
            ).fetchone()[0]
        return self.result

    def _until_settled(
        self, conn: sqlite3.Connection, bus: SqliteEventBus, workers: Workers
    ) -> None:
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            workers.check_alive()
            if self._step(conn, bus, workers):
                return
            time.sleep(_POLL_S)
        raise TimeoutError("the bus did not settle within 30 minutes")

    def _step(self, conn: sqlite3.Connection, bus: SqliteEventBus, workers: Workers) -> bool:
        """One look at the bus; True when every delivery is settled for good."""
        now = time.monotonic()
        settled = True
        for row in _deliveries(conn):
            key = (row["id"], row["attempts"])
            if row["state"] == "leased":
                settled = False
                if key not in self.seen_leases:
                    self._leased(key, row["subscription"], now)
                elif now >= self.kill_at.get(key, float("inf")):
                    del self.kill_at[key]
                    workers.kill(row["subscription"])
                    self.kills_of[row["id"]] += 1
                    self.result.kills += 1
                continue
            self._finished(key, row["subscription"], now)
            if row["state"] in ("pending", "retrying"):
                settled = False
            elif row["state"] == "done":
                self._republish(bus, row["message_id"])
                wanted = self.copies.setdefault(
                    row["id"], self.rng.randint(*self.chaos.copies) if self.chaos else 1
                )
                if row["done"] < wanted:
                    self._redeliver(conn, row["id"])
                    settled = False
        return settled

    def _leased(self, key: tuple[int, int], service: str, now: float) -> None:
        self.seen_leases[key] = now
        chaos = self.chaos
        if chaos is None or self.kills_of[key[0]] >= chaos.max_kills_per_delivery:
            return
        if self.rng.random() < chaos.kill_rate:
            self.kill_at[key] = now + self.rng.random() * self.expected_s.get(service, 0.5)

    def _finished(self, key: tuple[int, int], service: str, now: float) -> None:
        start = self.seen_leases.get(key)
        if start is not None and key not in self.kill_at and start >= 0:
            self.result.durations[service].append(now - start)
            self.seen_leases[key] = -1.0  # measured once
        self.kill_at.pop(key, None)  # it finished before its kill: no kill

    def _redeliver(self, conn: sqlite3.Connection, delivery_id: int) -> None:
        # What Pub/Sub does when an ack is lost: the settled message is delivered again.
        at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        changed = conn.execute(
            "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, updated_at = ?"
            " WHERE id = ? AND state = 'done'",
            (at, at, delivery_id),
        ).rowcount
        self.result.redelivered += changed

    def _republish(self, bus: SqliteEventBus, message_id: str) -> None:
        if self.chaos is None or message_id in self.republished:
            return
        self.republished.add(message_id)
        topic, data, attributes = bus.get_message(message_id)
        if bus.publish(topic, data, attributes, message_id=message_id):
            self.result.republish_accepted += 1
        else:
            self.result.republished += 1


# -- comparing two workspaces ---------------------------------------------------------------

# What legitimately differs between two runs of the same world, found by diffing two calm
# runs; only this is normalised, every other byte must be equal:
#   - the workspace's own path, in every URI (file:///…/calm/blobs/… vs …/chaos/blobs/…);
#   - wall-clock times: an event's `time`, a record's `created_at` / `decided_at`, a pointer
#     history's `at`, the "decided …" line of an evaluation report, and the durations the
#     trainer measures (`seconds_*`, `train_seconds`), also in the artifact's meta.json;
#   - inside a model artifact, skops names each array file by the Python object id() of the
#     array and stamps the zip entries with the time of writing: the arrays and the schema are
#     compared with those ids numbered in order of appearance instead;
#   - so the artifact's sha256 (`artifact_digest`, and the manifest's digests of the members
#     above) differs too: those are checked against the bytes they describe in each run
#     (`_digests_hold`) and then blanked.
_TIME_KEYS = frozenset({"time", "created_at", "decided_at", "at"})
_DECIDED = re.compile(rb"decided \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")
_DIGEST_KEYS = frozenset({"artifact_digest"})
_OBJECT_ID = re.compile(r"\d{12,}")


def _blank(value: object) -> object:
    if isinstance(value, dict):
        return {
            k: "<blank>"
            if k in _TIME_KEYS | _DIGEST_KEYS or k.startswith("seconds_") or k.endswith("_seconds")
            else _blank(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_blank(v) for v in value]
    return value


def _json(data: bytes) -> bytes:
    try:
        parsed = json.loads(data)
    except ValueError:
        return data
    return json.dumps(_blank(parsed), sort_keys=True).encode()


def _skops(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        order: dict[str, int] = {}
        schema = _OBJECT_ID.sub(
            lambda m: f"#{order.setdefault(m.group(), len(order))}", z.read("schema.json").decode()
        )
        arrays = sorted(
            f"#{order[n.removesuffix('.npy')]} {hashlib.sha256(z.read(n)).hexdigest()}"
            for n in z.namelist()
            if n != "schema.json"
        )
    return "\n".join([schema, *arrays]).encode()


def _model_zip(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        members = {n: z.read(n) for n in z.namelist()}
    out = []
    for name, raw in sorted(members.items()):
        if name == "manifest.json":
            manifest = json.loads(raw)
            normalised = {"manifest": {k: v for k, v in manifest.items() if k != "files"}}
            files = manifest.get("files", {})
            normalised["files"] = {
                n: d if not (n.endswith(".skops") or n == "meta.json") else "<blank>"
                for n, d in files.items()
            }
            raw = json.dumps(normalised, sort_keys=True).encode()
        elif name.endswith(".skops"):
            raw = _skops(raw)
        elif name.endswith(".json"):
            raw = _json(raw)
        out.append(name.encode() + b"\0" + raw)
    return b"\0\0".join(out)


def normalised(key: str, data: bytes, workspace: Path) -> bytes:
    """A blob's bytes with what legitimately differs between runs blanked (see above)."""
    data = data.replace(str(workspace).encode(), b"<workspace>")
    if key.endswith(".zip"):
        return _model_zip(data)
    if key.endswith(".json"):
        return _json(data)
    if key.startswith("reports/evaluations/"):
        return _DECIDED.sub(b"decided <blank>", data)
    return data


def blobs_of(workspace: Path) -> dict[str, bytes]:
    """Every visible blob; a writer's temp file (left by a kill mid-write) is invisible to
    readers, so it is not an artifact (`leftovers` counts them)."""
    root = workspace / "blobs"
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".locks" not in p.parts and not p.name.endswith(".tmp")
    }


def leftovers(workspace: Path) -> int:
    return sum(1 for p in (workspace / "blobs").rglob("*.tmp") if p.is_file())


def _digests_hold(workspace: Path, blobs: dict[str, bytes]) -> list[str]:
    """The digests blanked above, checked against the bytes they name in this run."""
    problems = []
    for key, raw in blobs.items():
        if key.startswith("registry/models/"):
            record = json.loads(raw)
            artifact = blobs.get(f"models/{record['version']}/model.zip", b"")
            if hashlib.sha256(artifact).hexdigest() != record["artifact_digest"]:
                problems.append(f"{workspace.name}: {key}: artifact_digest is not its artifact's")
        if key.endswith("/model.zip"):
            with zipfile.ZipFile(io.BytesIO(raw)) as z:
                files = json.loads(z.read("manifest.json")).get("files", {})
                for name, digest in files.items():
                    if hashlib.sha256(z.read(name)).hexdigest() != digest:
                        problems.append(f"{workspace.name}: {key}: {name} is not in its manifest")
    return problems


def bus_of(workspace: Path) -> tuple[dict[str, tuple[str, bytes]], dict[tuple[str, str], str]]:
    """(message id → (topic, envelope without its time), (message id, subscription) → state)."""
    conn = sqlite3.connect(workspace / "bus.sqlite3")
    try:
        messages = {
            mid: (topic, normalised("event.json", data, (workspace / "blobs").resolve()))
            for mid, topic, data in conn.execute("SELECT message_id, topic, data FROM messages")
        }
        states = {
            (mid, sub): state if state != "dead" else f"dead: {detail.split(':')[0]}"
            for mid, sub, state, detail in conn.execute(
                "SELECT m.message_id, d.subscription, d.state, d.detail"
                " FROM deliveries AS d JOIN messages AS m USING (seq)"
            )
        }
    finally:
        conn.close()
    return messages, states


def compare(calm: Path, chaos: Path) -> list[str]:
    """Every difference between the two workspaces, in words; [] when they are the same."""
    problems = []
    a, b = blobs_of(calm), blobs_of(chaos)
    calm_root, chaos_root = (calm / "blobs").resolve(), (chaos / "blobs").resolve()
    problems += _digests_hold(calm, a) + _digests_hold(chaos, b)
    for key in sorted(a.keys() | b.keys()):
        if key not in b:
            problems.append(f"blob {key}: missing after chaos")
        elif key not in a:
            problems.append(f"blob {key}: only after chaos")
        elif normalised(key, a[key], calm_root) != normalised(key, b[key], chaos_root):
            problems.append(f"blob {key}: different bytes")
    (calm_msgs, calm_states), (chaos_msgs, chaos_states) = bus_of(calm), bus_of(chaos)
    for mid in sorted(calm_msgs.keys() - chaos_msgs.keys()):
        problems.append(f"event {mid} ({calm_msgs[mid][0]}): lost")
    for mid in sorted(chaos_msgs.keys() - calm_msgs.keys()):
        problems.append(f"event {mid} ({chaos_msgs[mid][0]}): published by chaos only")
    for mid in sorted(calm_msgs.keys() & chaos_msgs.keys()):
        if calm_msgs[mid] != chaos_msgs[mid]:
            problems.append(f"event {mid} ({calm_msgs[mid][0]}): different content")
    for key in sorted(calm_states.keys() | chaos_states.keys()):
        if calm_states.get(key) != chaos_states.get(key):
            problems.append(
                f"delivery {key[0]} to {key[1]}: {calm_states.get(key)} in the calm run,"
                f" {chaos_states.get(key)} after chaos"
            )
    return problems


# -- the benchmark --------------------------------------------------------------------------


def synthesize(warehouse: Path, months: int, scale: float, seed: int) -> list[str]:
    """`cashmatch synth`; the months of the world, oldest first."""
    subprocess.run(
        [
            CLI,
            "synth",
            "--out",
            str(warehouse),
            "--months",
            str(months),
            "--scale",
            str(scale),
            "--seed",
            str(seed),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    first = dt.date(2025, 1, 1)
    return [
        f"{first.year + (first.month - 1 + i) // 12}-{(first.month - 1 + i) % 12 + 1:02d}"
        for i in range(months)
    ]


def to_close(months: list[str], backfill: int = 3) -> list[str]:
    """The backfill (its last month) first, then each later month, as `cashmatch demo` does."""
    return months[backfill - 1 :]


def expected_durations(calm: RunResult) -> dict[str, float]:
    """How long each service's work took in the calm run (its median): where to kill."""
    return {name: statistics.median(s) for name, s in calm.durations.items() if s}


def calm_and_chaos(
    root: Path, warehouse: Path, months: list[str], chaos: Chaos
) -> tuple[RunResult, RunResult, list[str]]:
    calm = Driver(root / "calm", warehouse, months, None).run()
    wild = Driver(root / "chaos", warehouse, months, chaos, expected_durations(calm)).run()
    return calm, wild, compare(calm.workspace, wild.workspace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kill-rate", type=float, default=Chaos.kill_rate)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cashmatch-chaos-") as tmp:
        root = Path(tmp)
        months = to_close(synthesize(root / "warehouse.duckdb", args.months, args.scale, 7))
        chaos = Chaos(seed=args.seed, kill_rate=args.kill_rate)
        calm, wild, problems = calm_and_chaos(root, root / "warehouse.duckdb", months, chaos)
        print(
            f"\n{args.months} months synthesized (scale {args.scale}), {len(months)} closes "
            f"(the backfill first), seed {args.seed}, kill rate {args.kill_rate}\n"
        )
        print_table(calm, wild, problems)
    if problems or wild.republish_accepted:
        raise SystemExit(1)


def print_table(calm: RunResult, wild: RunResult, problems: list[str]) -> None:
    """Both runs side by side, with the ratio where one means something."""
    blobs, events, deliveries = compared(calm.workspace)
    rows = [
        ("month closes", calm.months, wild.months, ""),
        ("worker SIGKILLs", calm.kills, wild.kills, ""),
        ("deliveries started", calm.deliveries, wild.deliveries, ""),
        ("redelivered after done", calm.redelivered, wild.redelivered, ""),
        ("republished, dropped by the bus", calm.republished, wild.republished, ""),
        ("duplicates absorbed", calm.duplicates_absorbed, wild.duplicates_absorbed, ""),
        ("temp files left by kills", leftovers(calm.workspace), leftovers(wild.workspace), ""),
        ("blobs / events / deliveries", f"{blobs}/{events}/{deliveries}", "same", ""),
        ("differing artifacts", "–", len(problems), ""),
        ("wall time s", f"{calm.wall_s:.1f}", f"{wild.wall_s:.1f}", wild.wall_s / calm.wall_s),
        (
            "peak worker RSS MB",
            f"{calm.peak_rss_mb:.0f}",
            f"{wild.peak_rss_mb:.0f}",
            wild.peak_rss_mb / calm.peak_rss_mb if calm.peak_rss_mb else "",
        ),
    ]
    print(f"| {'':<31} | {'calm':>9} | {'chaos':>9} | {'× calm':>6} |")
    print(f"| {'-' * 31} | {'-' * 9} | {'-' * 9} | {'-' * 6} |")
    for name, a, b, ratio in rows:
        r = f"{ratio:.2f}" if isinstance(ratio, float) else ratio
        print(f"| {name:<31} | {a!s:>9} | {b!s:>9} | {r:>6} |")
    for problem in problems:
        print(f"DIFFERENT: {problem}")


def compared(workspace: Path) -> tuple[int, int, int]:
    """How many blobs, events and deliveries a comparison looked at."""
    messages, states = bus_of(workspace)
    return len(blobs_of(workspace)), len(messages), len(states)


if __name__ == "__main__":
    main()
