"""The environment the local Ray head and its workers start with."""

from __future__ import annotations

import stat

import pytest

from cashmatch.adapters.local.ray_head import (
    SERVE_ENV_DEFAULTS,
    TOKEN_FILE,
    auth_token_path,
    ray_environment,
    serve_environment,
)

pytestmark = pytest.mark.unit


def test_the_proxy_reaches_replicas_over_grpc_unless_the_environment_says_otherwise(
    monkeypatch, tmp_path
):
    monkeypatch.delenv("RAY_SERVE_PROXY_USE_GRPC", raising=False)
    assert SERVE_ENV_DEFAULTS["RAY_SERVE_PROXY_USE_GRPC"] == "1"
    assert serve_environment()["RAY_SERVE_PROXY_USE_GRPC"] == "1"
    assert ray_environment(tmp_path)["RAY_SERVE_PROXY_USE_GRPC"] == "1"

    monkeypatch.setenv("RAY_SERVE_PROXY_USE_GRPC", "0")
    assert ray_environment(tmp_path)["RAY_SERVE_PROXY_USE_GRPC"] == "0"


def test_loopback_and_auth_settings_win_over_the_callers_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "1")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "another cluster's token")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = ray_environment(tmp_path)
    assert env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
    assert env["RAY_USAGE_STATS_ENABLED"] == "0"
    # token auth with the workspace's token, whatever the caller or ~/.ray/auth_token say
    assert env["RAY_AUTH_MODE"] == "token"
    assert env["RAY_AUTH_TOKEN_PATH"] == str(tmp_path / TOKEN_FILE)
    assert "RAY_AUTH_TOKEN" not in env
    # the workers run this interpreter: cashmatch comes from its environment, the caller's
    # path is passed on as it was
    assert env["PYTHONPATH"] == "/elsewhere"


def test_each_workspace_has_its_own_token_readable_by_its_owner_only(tmp_path):
    first = auth_token_path(tmp_path / "a")
    token = first.read_text()
    assert len(token) == 32 and int(token, 16) >= 0
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert auth_token_path(tmp_path / "a").read_text() == token  # made once, then kept
    assert auth_token_path(tmp_path / "b").read_text() != token
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name]  # no partial left


def test_a_head_recorded_before_token_auth_is_known_as_such():
    from cashmatch.adapters.local.ray_head import HeadState

    old = '{"address": "127.0.0.1:1", "gcs_port": 1, "temp_dir": "/t", "serve_port": 8000,'
    old += ' "started_at": "2026-11-01T00:00:00Z"}'
    # ensure_head replaces such a head rather than reuse it: our drivers now send a token
    assert HeadState.model_validate_json(old).auth == "none"
