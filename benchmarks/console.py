"""The console's page latency with 24 closed months and 100 model versions in the registry.

Run: make bench-console   (or .venv/bin/python benchmarks/console.py [--requests 40])

A real chain closes two months of a small synthetic warehouse on the local stack; its month
slice, drift report, model record, verdict, curve and evaluation report are then copied into 24
months and 100 versions (ids, months, times and the pointer histories rewritten), so every page
reads what it would read after two years. The console is served by uvicorn on a loopback port
in this process and each page is fetched over HTTP, one request at a time; p50 and p95 of the
wall time per request are printed. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from cashmatch.bootstrap import bootstrap  # noqa: E402
from cashmatch.domain.model_records import Pointer, PointerChange  # noqa: E402
from cashmatch.entrypoints.console.access import TOKEN_COOKIE, workspace_token  # noqa: E402
from cashmatch.settings import Settings  # noqa: E402
from tests.console_support import build_world, running_console  # noqa: E402

MONTHS = 24
VERSIONS = 100


def _months(last: str, count: int) -> list[str]:
    """`count` months ending with `last` (YYYY-MM), oldest first."""
    year, month = map(int, last.split("-"))
    index = year * 12 + month - 1
    return [f"{i // 12}-{i % 12 + 1:02d}" for i in range(index - count + 1, index + 1)]


def inflate(settings: Settings) -> tuple[list[str], list[str]]:
    """Copy the seed world's month and version into MONTHS months and VERSIONS versions."""
    ports = bootstrap(settings)
    blobs = ports.blobs
    seed_month = max(ports.datasets.slice_months())
    seed = ports.registry.versions()[-1]
    verdict = ports.registry.verdict(seed.version)
    assert verdict is not None
    months = _months(seed_month, MONTHS)
    month_files = blobs.list(f"datasets/months/{seed_month}/")
    manifest = json.loads(blobs.get(f"datasets/manifests/{seed_month}.json").data)
    for index, month in enumerate(months):
        for key in month_files:
            blobs.put(key.replace(f"/{seed_month}/", f"/{month}/"), blobs.get(key).data)
        body = {**manifest, "version": f"ds-{month}-bench", "training_months": months[: index + 1]}
        blobs.put(f"datasets/manifests/{month}.json", json.dumps(body).encode())
        for ext in ("html", "json"):
            key = f"reports/drift/{seed_month}.{ext}"
            if blobs.exists(key):
                blobs.put(f"reports/drift/{month}.{ext}", blobs.get(key).data)
    report = blobs.get(f"reports/evaluations/{seed.version}.html").data
    curve = blobs.get(f"reports/evaluations/{seed.version}.curve.parquet").data
    created = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    versions, champion_changes, deployed_changes = [], [], []
    champion: str | None = None
    for index in range(VERSIONS - len(ports.registry.versions())):  # the seed's count too
        version = f"m-bench{index:05d}"
        month = months[min(index * MONTHS // VERSIONS, MONTHS - 1)]
        trained = months[: months.index(month) + 1]
        record = seed.model_copy(
            update={
                "version": version,
                "training_months": trained,
                "dataset_version": f"ds-{month}-bench",
                "created_at": created + dt.timedelta(hours=index),
            }
        )
        blobs.put(f"registry/models/{version}.json", record.model_dump_json().encode())
        passed = index % 5 == 0
        judged = verdict.model_copy(
            update={
                "version": version,
                "passed": passed,
                "champion_version": champion,
                "report_uri": blobs.uri(f"reports/evaluations/{version}.html"),
                "decided_at": created + dt.timedelta(hours=index, minutes=5),
                "event_id": f"bench-verdict-{index}",
            }
        )
        blobs.put(f"registry/verdicts/{version}.json", judged.model_dump_json().encode())
        blobs.put(f"reports/evaluations/{version}.html", report)
        blobs.put(f"reports/evaluations/{version}.curve.parquet", curve)
        if passed:
            at = created + dt.timedelta(hours=index, minutes=6)
            change = PointerChange(
                version=version, previous=champion, at=at, by=f"bench-{index}", reason="passed"
            )
            champion_changes.append(change)
            deployed_changes.append(change.model_copy(update={"reason": "rolled out"}))
            champion = version
        versions.append(version)
    for name, changes in (("champion", champion_changes), ("deployed", deployed_changes)):
        pointer = Pointer(version=champion, endpoint="registry-only", history=changes)
        blobs.put(f"registry/{name}.json", pointer.model_dump_json().encode())
    ports.bus.close()  # type: ignore[attr-defined]
    return months, versions


def measure(base: str, token: str, pages: dict[str, str], requests: int) -> list[list[object]]:
    rows: list[list[object]] = []
    with httpx.Client(base_url=base, timeout=60, cookies={TOKEN_COOKIE: token}) as client:
        for name, path in pages.items():
            assert client.get(path).status_code == 200, path  # warm-up, and it must answer
            times = []
            for _ in range(requests):
                started = time.perf_counter()
                page = client.get(path)
                times.append((time.perf_counter() - started) * 1000)
                assert page.status_code == 200
            ordered = sorted(times)
            p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
            rows.append([name, path, statistics.median(times), p95, len(page.content) // 1024])
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="timed requests per page")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        from cashmatch.synth import SynthConfig, generate, write_warehouse

        root = Path(tmp)
        warehouse = root / "warehouse.duckdb"
        print("seeding: a real chain on two months of a small warehouse…", flush=True)
        data = generate(SynthConfig(months=5, start="2025-01", scale=0.2, seed=11))
        write_warehouse(data, warehouse)
        world = build_world(root, warehouse)
        settings = world.settings()
        months, versions = inflate(settings)
        ports = bootstrap(settings)
        count = (len(ports.datasets.slice_months()), len(ports.registry.versions()))
        ports.bus.close()  # type: ignore[attr-defined]
        print(f"registry: {count[0]} months with a slice, {count[1]} model versions")
        pages = {
            "months (timeline)": "/",
            "models": "/models",
            "model page": f"/models/{versions[-1]}",
            "month page": f"/months/{months[-1]}",
            "events": "/events",
        }
        with running_console(settings) as base:
            rows = measure(base, workspace_token(world.workspace), pages, args.requests)
    print(f"\nconsole page latency, {args.requests} requests per page, one at a time (ms)")
    print(f"{'page':<20} {'path':<26} {'p50':>8} {'p95':>8} {'KiB':>6}")
    for name, path, p50, p95, size in rows:
        print(f"{name:<20} {str(path)[:26]:<26} {p50:>8.1f} {p95:>8.1f} {size:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
