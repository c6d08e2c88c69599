"""The environment the local Ray head and its workers start with."""

from __future__ import annotations

import os

from shared.adapters.local.ray_serving import SERVE_ENV_DEFAULTS, ray_environment


def test_the_proxy_reaches_replicas_over_grpc_unless_the_environment_says_otherwise(monkeypatch):
    monkeypatch.delenv("RAY_SERVE_PROXY_USE_GRPC", raising=False)
    assert SERVE_ENV_DEFAULTS["RAY_SERVE_PROXY_USE_GRPC"] == "1"
    assert ray_environment()["RAY_SERVE_PROXY_USE_GRPC"] == "1"

    monkeypatch.setenv("RAY_SERVE_PROXY_USE_GRPC", "0")
    assert ray_environment()["RAY_SERVE_PROXY_USE_GRPC"] == "0"


def test_loopback_and_auth_settings_win_over_the_callers_environment(monkeypatch):
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "1")
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = ray_environment()
    assert env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
    assert env["RAY_USAGE_STATS_ENABLED"] == "0"
    # the head and the drivers agree, whatever ~/.ray/auth_token holds (tests/e2e/...http.py)
    assert env["RAY_AUTH_MODE"] == "disabled"
    root, *rest = env["PYTHONPATH"].split(os.pathsep)
    assert os.path.isfile(os.path.join(root, "services", "matcher", "app.py"))
    assert rest == ["/elsewhere"]
