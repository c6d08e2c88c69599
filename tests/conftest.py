"""Shared fixtures: a small synthetic warehouse (made once) and local-stack ports per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cashmatch.bootstrap import bootstrap
from cashmatch.service_layer.context import Ports
from cashmatch.settings import load_settings


@pytest.fixture(autouse=True)
def _no_cashmatch_env(monkeypatch):
    """Tests never pick up a developer's CASHMATCH_* variables."""
    for name in list(os.environ):
        if name.startswith("CASHMATCH_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def small_warehouse(tmp_path_factory) -> Path:
    """Five months of default-profile data at a fifth of the usual volume."""
    from cashmatch.synth import SynthConfig, generate, write_warehouse

    path = tmp_path_factory.mktemp("warehouse") / "small.duckdb"
    write_warehouse(generate(SynthConfig(months=5, start="2025-01", scale=0.2, seed=11)), path)
    return path


@pytest.fixture(scope="session")
def console_world(tmp_path_factory, small_warehouse):
    """A workspace after the chain ran on two months and parked a third (approval required):
    made once; each console test works on a copy (`world.copy`)."""
    from tests.console_support import build_world

    return build_world(tmp_path_factory.mktemp("console-world"), small_warehouse)


@pytest.fixture
def make_ports(tmp_path):
    """Build local-stack ports in a fresh workspace; keyword arguments override settings."""

    def build(**overrides) -> Ports:
        overrides.setdefault("workspace", tmp_path / "workspace")
        overrides.setdefault("min_backoff_s", 0.0)
        return bootstrap(load_settings(**overrides))

    return build


_TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config, items):
    """Every test carries the marker of its tier folder, so `make test-unit` and friends never
    miss a module that forgot its `pytestmark`."""
    root = Path(__file__).parent
    for item in items:
        tier = item.path.relative_to(root).parts[0]
        if tier in _TIERS and item.get_closest_marker(tier) is None:
            item.add_marker(getattr(pytest.mark, tier))


_BAD_INPUTS: dict[str, int] = {}


@pytest.fixture
def bad_inputs() -> dict[str, int]:
    """Tests of bad input record how many cases of each kind they tried."""
    return _BAD_INPUTS


_SKIPPED: list[str] = []


def pytest_runtest_logreport(report):
    """Remember every skipped test: a skip is a promise the run did not check."""
    if report.skipped and not hasattr(report, "wasxfail"):
        _SKIPPED.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    """No silent skips: every dependency of the suite is in uv.lock and every emulator is
    started by the tests, so a skipped test fails the run (ALLOW_SKIPS=1 allows them
    for a run by hand)."""
    if _SKIPPED and os.environ.get("ALLOW_SKIPS") != "1" and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print what the bad-input tests tried, so the count is visible in every run; name the
    skips that fail the run."""
    if _SKIPPED and os.environ.get("ALLOW_SKIPS") != "1":
        terminalreporter.section("skipped tests fail the run")
        for nodeid in _SKIPPED:
            terminalreporter.write_line(f"SKIPPED {nodeid}")
    if _BAD_INPUTS:
        terminalreporter.section("bad input tried")
        for kind, count in sorted(_BAD_INPUTS.items()):
            terminalreporter.write_line(f"{count:4d} {kind}")


@pytest.fixture(autouse=True)
def _keep_a_working_directory():
    """Some libraries resolve paths against the working directory; if a test's cleanup removed
    the folder it stood in, later tests would fail for no reason of their own."""
    root = Path(__file__).resolve().parents[1]
    yield
    try:
        os.getcwd()
    except FileNotFoundError:
        os.chdir(root)
