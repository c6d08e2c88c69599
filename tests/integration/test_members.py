"""Each service runs with only what its own workspace member declares.

In development every member can import every other member's dependencies (one environment for
the workspace), so only an environment synced with one member alone catches a missing
declaration before an image does: `uv sync --locked --no-dev --package cashmatch-<name>`, as
the service's Dockerfile runs it. The chain then runs service by service, each in its own
environment, each event posted to the service's own functions-framework function
(tests/members/smoke.py), and the matcher answers over HTTP from its own environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.checks.dependencies import sync_member

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests" / "members" / "smoke.py"
# in the order the chain runs them
SERVICES = ["collector", "trainer", "monitor", "evaluator", "deployer", "alerter"]


def member_env(name: str, where: Path) -> Path:
    """A fresh environment with `cashmatch-<name>` alone, from uv.lock; its python."""
    return sync_member(name, where / f"env-{name}")


def installed(python: Path) -> set[str]:
    """Distribution names installed in an environment."""
    code = "import importlib.metadata as m; print('\\n'.join(d.metadata['Name'] for d in m.distributions()))"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    return {line.strip().lower() for line in out.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, str]:
    """A synthetic warehouse of four months, made with the development environment."""
    where = tmp_path_factory.mktemp("members")
    warehouse = where / "warehouse.duckdb"
    subprocess.run(
        [sys.executable, "-m", "cashmatch.entrypoints.cli", "synth", "--months", "4",
         "--out", str(warehouse)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return {
        "CASHMATCH_WORKSPACE": str(where / "ws"),
        "CASHMATCH_WAREHOUSE": str(warehouse),
        "CASHMATCH_SERVING": "none",
        "ROOT": str(where),
    }


def smoke(python: Path, service: str, workspace: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASHMATCH_")}
    env.update({k: v for k, v in workspace.items() if k.startswith("CASHMATCH_")})
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [python, SMOKE, service], capture_output=True, text=True, env=env, cwd=ROOT, timeout=900
    )
    assert done.returncode == 0, f"{service} in its own environment:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_each_service_runs_in_an_environment_of_its_own_member(workspace):
    where = Path(workspace["ROOT"])
    for service in SERVICES:
        python = member_env(service, where)
        packages = installed(python)
        assert "ray" not in packages, f"{service}'s environment has Ray"
        result = smoke(python, service, workspace)
        assert result["status"] == 200, result
        assert result["parked"] == [], f"{service} parked an event: {result}"
        if result["expected"]:
            assert result["expected"] in result["published"], result
        if service == "alerter":  # its answer is a notification, not an event
            assert any(a.startswith("ALERT deployment") for a in result["alerts"]), result


def test_the_matcher_answers_from_an_environment_of_its_own_member(workspace):
    # the chain above leaves a champion in the workspace; run it if this test runs alone
    registry_dir = Path(workspace["CASHMATCH_WORKSPACE"]) / "blobs" / "registry"
    if not (registry_dir / "champion.json").exists():
        test_each_service_runs_in_an_environment_of_its_own_member(workspace)
    python = member_env("matcher", Path(workspace["ROOT"]))
    packages = installed(python)
    assert "ray" in packages and "google-cloud-aiplatform" not in packages
    result = smoke(python, "matcher", workspace)
    assert result["status"] == 200
    assert result["model_version"] == result["champion"]


def test_shared_and_services_are_folders_not_packages(workspace):
    python = member_env("collector", Path(workspace["ROOT"]))
    for name in ("shared", "services"):
        # from the repository root, where a folder of that name is on the path
        done = subprocess.run(
            [python, "-c", f"import {name}"], capture_output=True, text=True, cwd=ROOT
        )
        assert done.returncode != 0 and "not a package: import cashmatch" in done.stderr
    done = subprocess.run([python, "-c", "import cashmatch.bootstrap"], cwd=ROOT)
    assert done.returncode == 0


def test_the_console_serves_from_an_environment_of_its_own_member(workspace):
    import time

    import httpx

    from tests.console_support import free_port

    registry_dir = Path(workspace["CASHMATCH_WORKSPACE"]) / "blobs" / "registry"
    if not (registry_dir / "champion.json").exists():
        test_each_service_runs_in_an_environment_of_its_own_member(workspace)
    champion = json.loads((registry_dir / "champion.json").read_text())["version"]
    python = member_env("console", Path(workspace["ROOT"]))
    packages = installed(python)
    assert "ray" not in packages and "google-cloud-aiplatform" not in packages
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASHMATCH_")}
    env.update({k: v for k, v in workspace.items() if k.startswith("CASHMATCH_")})
    env.update(PORT=str(port), CASHMATCH_CONSOLE_AUTH="iap")
    env.pop("PYTHONPATH", None)
    server = subprocess.Popen(
        [python, "services/console/main.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the console did not answer"
            time.sleep(0.2)
        page = httpx.get(f"{base}/", timeout=30)
        assert page.status_code == 200 and champion in page.text
        model = httpx.get(f"{base}/models/{champion}", timeout=30)
        assert model.status_code == 200 and 'id="evaluation-report"' in model.text
        refused = httpx.post(f"{base}/actions/approve", data={"target": champion}, timeout=30)
        assert refused.status_code == 403, "no IAP user: read-only"
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stderr:
            server.stderr.close()
