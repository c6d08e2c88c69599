"""The console's access rules over HTTP, against the real app on a loopback port: without the
workspace token or with a missing or forged CSRF token a POST is refused with 403 and changes
nothing; it binds loopback only unless told otherwise; pages carry no script. (The browser test,
tests/e2e/test_console_browser.py, drives the buttons themselves.)"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cashmatch.entrypoints.console.access import (
    SESSION_COOKIE,
    TOKEN_COOKIE,
    check_bind,
    token_path,
    workspace_token,
)
from cashmatch.entrypoints.console.server import console_url
from cashmatch.service_layer import overview
from cashmatch.settings import SettingsError
from tests.console_support import CLOSED, DEAD_MONTH, running_console, snapshot

pytestmark = pytest.mark.integration
CLI = [str(Path(sys.executable).with_name("cashmatch"))]


@pytest.fixture
def world(console_world, tmp_path):
    return console_world.copy(tmp_path / "workspace")


_OPEN: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    while _OPEN:
        _OPEN.pop().close()


def _client(base: str, **kwargs) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30, **kwargs)
    _OPEN.append(client)
    return client


def _post(base: str, path: str, *, cookies: dict[str, str], **kwargs) -> httpx.Response:
    return _client(base, cookies=cookies).post(path, **kwargs)


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, "no CSRF field in the form"
    return found.group(1)


def _targets(world) -> dict[str, str]:
    ports = _ports(world)
    (dead,) = ports.bus.dead_letters()
    champion = ports.registry.champion()[0].version
    ports.bus.close()
    assert champion is not None
    return {
        "redrive": dead.message_id,
        "republish": dead.message_id,
        "approve": champion,
        "reject": champion,
    }


def _signed_in(base: str, world) -> httpx.Client:
    """A browser that opened the URL `cashmatch ui` printed."""
    client = _client(base)
    token = workspace_token(world.workspace)
    opened = client.get(f"/?token={token}")
    assert opened.status_code == 303 and opened.headers["location"] == "/"
    assert client.cookies.get(TOKEN_COOKIE) == token
    return client


def test_the_token_is_made_once_kept_private_and_swapped_for_a_cookie(world):
    settings = world.settings()
    url = console_url(settings)
    token = workspace_token(world.workspace)
    assert url == f"http://127.0.0.1:8765/?token={token}"
    assert workspace_token(world.workspace) == token, "the same token on every start"
    mode = stat.S_IMODE(os.stat(token_path(world.workspace)).st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(os.stat(token_path(world.workspace).parent).st_mode) == 0o700
    with running_console(settings) as base:
        client = _signed_in(base, world)
        cookie = next(c for c in client.cookies.jar if c.name == TOKEN_COOKIE)
        assert cookie.has_nonstandard_attr("HttpOnly")
        assert "acting as console:" in client.get("/").text
        wrong = _client(base).get("/?token=not-the-token")
        assert wrong.status_code == 403 and TOKEN_COOKIE not in wrong.cookies
        assert "read-only" in _client(base).get("/").text


@pytest.mark.parametrize("action", ["redrive", "republish", "approve", "reject"])
def test_a_post_without_the_token_is_refused_with_403_and_changes_nothing(world, action):
    target = _targets(world)[action]
    with running_console(world.settings()) as base:
        anonymous = _client(base)
        page = anonymous.get(f"/confirm/{action}", params={"target": target})
        assert page.status_code == 200 and "You may only read here" in page.text
        # a valid session and its CSRF token: only the workspace token is missing or wrong
        signed = _signed_in(base, world)
        csrf = _csrf(signed.get(f"/confirm/{action}?target={target}").text)
        session = signed.cookies[SESSION_COOKIE]
        before = snapshot(world.workspace)
        for cookies in ({}, {TOKEN_COOKIE: "forged"}):
            refused = _post(
                base,
                f"/actions/{action}",
                data={"target": target, "reason": "r", "csrf": csrf},
                cookies={**cookies, SESSION_COOKIE: session},
            )
            assert refused.status_code == 403, refused.text
            assert "not allowed" in refused.text
        assert snapshot(world.workspace) == before


@pytest.mark.parametrize("action", ["redrive", "republish", "approve", "reject"])
@pytest.mark.parametrize("csrf", ["missing", "forged", "another session's"])
def test_a_missing_or_forged_csrf_token_is_refused_with_403_and_changes_nothing(
    world, action, csrf
):
    target = _targets(world)[action]
    with running_console(world.settings()) as base:
        client = _signed_in(base, world)
        other = _signed_in(base, world)
        given = {
            "missing": None,
            "forged": "0" * 64,
            "another session's": _csrf(other.get(f"/confirm/{action}?target={target}").text),
        }[csrf]
        client.get(f"/confirm/{action}?target={target}")  # has a session of its own
        before = snapshot(world.workspace)
        form = {"target": target, "reason": "r"} | ({"csrf": given} if given else {})
        refused = client.post(f"/actions/{action}", data=form)
        assert refused.status_code == 403
        assert "CSRF" in refused.text
        assert snapshot(world.workspace) == before


def test_with_token_and_csrf_a_rejection_is_recorded_with_who_and_its_reason(world):
    target = _targets(world)["reject"]
    with running_console(world.settings()) as base:
        client = _signed_in(base, world)
        csrf = _csrf(client.get(f"/confirm/reject?target={target}").text)
        no_reason = client.post("/actions/reject", data={"target": target, "csrf": csrf})
        assert no_reason.status_code == 409 and "needs a reason" in no_reason.text
        done = client.post(
            "/actions/reject", data={"target": target, "csrf": csrf, "reason": "audit pending"}
        )
        assert done.status_code == 200, done.text
        approval = json.loads(
            (world.workspace / f"blobs/registry/approvals/{target}.json").read_text()
        )
        assert approval["approved"] is False and approval["reason"] == "audit pending"
        assert approval["by"].startswith("console:")
        events = client.get("/events").text
        assert "audit pending" in events and approval["by"] in events
        again = client.post(
            "/actions/approve", data={"target": target, "csrf": csrf, "reason": "x"}
        )
        assert again.status_code == 409 and "a decision is final" in again.text


def test_behind_iap_the_proxy_user_acts_and_a_request_without_it_may_only_read(world):
    settings = world.settings(console_auth="iap", console_csrf_key="k" * 32)
    target = _targets(world)["approve"]
    user = {"X-Goog-Authenticated-User-Email": "accounts.google.com:ana@example.com"}
    with running_console(settings) as base:
        client = _client(base, headers=user)
        csrf = _csrf(client.get(f"/confirm/approve?target={target}").text)
        before = snapshot(world.workspace)
        bare = _post(
            base,
            "/actions/approve",
            data={"target": target, "csrf": csrf, "reason": "ok"},
            cookies=dict(client.cookies),
        )
        assert bare.status_code == 403 and snapshot(world.workspace) == before
        done = client.post("/actions/approve", data={"target": target, "csrf": csrf})
        assert done.status_code == 200, done.text
        approval = json.loads(
            (world.workspace / f"blobs/registry/approvals/{target}.json").read_text()
        )
        assert approval["by"] == "console:ana@example.com"


def test_it_binds_loopback_only_unless_told_otherwise(world, tmp_path):
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        check_bind(host, allow_remote=False)
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        with pytest.raises(SettingsError, match="loopback only"):
            check_bind(host, allow_remote=False)
        check_bind(host, allow_remote=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASHMATCH_")}
    env.update(world.env())
    refused = subprocess.run(
        [*CLI, "ui", "--host", "0.0.0.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "loopback only" in refused.stderr
    assert not token_path(world.workspace).exists(), "refused before anything is made"


def test_every_page_renders_without_a_script_under_a_strict_csp(world):
    ports = _ports(world)
    versions = [m["version"] for m in overview.models(ports.registry)]
    ports.bus.close()
    with running_console(world.settings()) as base:
        client = _signed_in(base, world)
        pages = ["/", "/models", "/events", *(f"/months/{m}" for m in CLOSED)]
        pages += [f"/models/{v}" for v in versions]
        for path in pages:
            page = client.get(path)
            assert page.status_code == 200, path
            assert "<script" not in page.text.lower(), path
            assert "default-src 'none'" in page.headers["content-security-policy"]
            assert page.headers["x-frame-options"] == "DENY"
        assert client.get("/models/m-nope").status_code == 404
        assert client.get("/months/../x").status_code == 404
        assert client.get(f"/months/{DEAD_MONTH}").status_code == 404  # parked: never collected
        model = client.get(f"/models/{versions[0]}").text
        assert 'id="evaluation-report"' in model and "<svg" in model
        assert "Metrics on the frozen test set" in model


def _ports(world):
    from cashmatch.bootstrap import bootstrap

    return bootstrap(world.settings())


def test_the_timeline_reads_what_status_reads(world):
    ports = _ports(world)
    line = overview.timeline(ports)
    status = overview.status(ports)
    ports.bus.close()
    assert [m["month"] for m in line["months"]] == [m["month"] for m in status["months"]]
    first, second = line["months"][-2:]
    # The first month's candidate became the first champion; a fresher tie may have replaced
    # it since (the paired gates promote one trained on newer months).
    champion = status["champion_history"][0]["version"]
    assert first["candidate"] == champion and first["verdict"] == "passed"
    assert first["approval"] == "waiting" and first["champion"] == champion
    assert second["verdict"] in ("passed", "rejected") and second["verdict_words"]
    assert first["deployed"] is None, "approval required: nothing rolled out"
    assert first["auto_share"] is None and first["realized_precision"] is None
    assert line["dead_letters"] == 1
