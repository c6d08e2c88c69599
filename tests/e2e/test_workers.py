"""Each service as its own long-running process, sharing the on-disk bus like real services."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_four_worker_processes_carry_a_month_through_the_chain(tmp_path, small_warehouse):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASHMATCH_")}
    env.update(CASHMATCH_WORKSPACE=str(tmp_path / "ws"), CASHMATCH_WAREHOUSE=str(small_warehouse))
    cli = [str(Path(sys.executable).with_name("cashmatch"))]  # the installed console script
    subprocess.run(
        [*cli, "publish", "month.closed", "--month", "2025-03"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    workers = [
        subprocess.Popen(
            [*cli, "worker", name, "--poll", "0.2"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("collector", "trainer", "evaluator", "deployer")
    ]
    try:
        deadline = time.monotonic() + 300
        deployed = []
        while time.monotonic() < deadline and not deployed:
            time.sleep(1)
            log = json.loads(
                subprocess.run(
                    [*cli, "events", "--json", "--topic", "model.deployed"],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=120,
                ).stdout
            )
            deployed = [r for r in log if r["attributes"].get("month") == "2025-03"]
            assert all(w.poll() is None for w in workers), "a worker died"
        assert deployed, "the month never reached deployment"
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        outputs = [w.communicate(timeout=60) for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0, 0], outputs
    assert all("worker stopped after 1 deliveries" in out for out, _ in outputs), outputs
