"""The console in a real headless Chromium (Debian's chromium + chromium-driver: `make browser`),
driven by Selenium: it opens the URL `cashmatch ui` prints on a workspace with a run chain, reads
the month timeline, opens a model page, redrives a dead-lettered event and approves a version;
then the same two actions are done with the CLI on a copy of the same workspace, and the bus and
registry of both must have changed alike (only who did it and when differ).

Screenshots of the main pages (laptop and phone widths) are kept in
$CONSOLE_SCREENSHOTS, else in the test's tmp_path; the test prints where."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cashmatch.entrypoints.console.access import workspace_token
from tests.console_support import CLOSED, World, running_console

pytestmark = pytest.mark.e2e
CLI = [str(Path(sys.executable).with_name("cashmatch"))]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
REASON = "checked the report by hand"


@pytest.fixture
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("no chromium / chromedriver: `make browser` installs Debian's (as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def screenshots(tmp_path) -> Path:
    folder = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"console screenshots: {folder}")
    return folder


def _shoot(driver: Any, folder: Path, name: str, *, phone: bool = False) -> None:
    if phone:
        driver.set_window_size(390, 844)
    # the whole page, not only the window
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, min(max(height + 120, 600), 6000))
    driver.save_screenshot(str(folder / f"{name}.png"))
    driver.set_window_size(1280, 900)


def _cli(world: World, *commands: list[str]) -> subprocess.Popen[str]:
    """The commands one after another, as a person types them, in the background (the
    browser meanwhile works on another copy of the workspace)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASHMATCH_")}
    env.update(world.env())
    script = " && ".join(shlex.join([*CLI, *c]) for c in commands)
    return subprocess.Popen(  # our own quoted argv
        ["/bin/sh", "-c", script],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _state(world: World) -> dict[str, Any]:
    """The bus and the registry as the CLI's readers see them, without the times and the names
    of who acted (a console click and a command differ there and only there)."""
    from cashmatch.bootstrap import bootstrap

    ports = bootstrap(world.settings())
    try:
        deliveries = sorted(
            (r.message_id, r.topic, r.subscription or "", r.state, r.attempts, r.detail)
            for r in ports.bus.log(limit=100_000)
        )
        messages = {}
        for message_id in {d[0] for d in deliveries}:
            topic, data, attributes = ports.bus.get_message(message_id)
            body = json.loads(data)
            body.pop("time", None)
            messages[message_id] = (topic, body, attributes)
        blobs = world.workspace / "blobs"
        registry = {}
        for path in sorted((blobs / "registry").rglob("*.json")):
            record = json.loads(path.read_text())
            for moved in (record, *record.get("history", [])):
                moved.pop("at", None)
            if "by" in record:
                record["by"] = record["by"].split(":", 1)[1]  # console:<user> / cli:<user>
            registry[path.relative_to(blobs).as_posix()] = record
        actions = sorted(
            (a["action"], a["target"], a["reason"], a["outcome"], a["by"].split(":", 1)[1])
            for a in (json.loads(p.read_text()) for p in (blobs / "audit").rglob("*.json"))
        )
        others = {
            p.relative_to(blobs).as_posix(): p.read_bytes()
            for p in blobs.rglob("*")
            if p.is_file()
            and not {"registry", "audit", ".locks"} & set(p.relative_to(blobs).parts)
            and not p.name.endswith(".tmp")
        }
        return {
            "deliveries": deliveries,
            "messages": messages,
            "registry": registry,
            "actions": actions,
            "other blobs": others,
        }
    finally:
        ports.bus.close()  # type: ignore[attr-defined]


def test_the_console_in_a_browser_changes_bus_and_registry_as_the_cli_does(
    console_world, tmp_path, browser, screenshots
):
    from selenium.webdriver.common.by import By

    console, cli = console_world.copy(tmp_path / "console"), console_world.copy(tmp_path / "cli")
    before = _state(console)
    ((dead_id, *_),) = [d for d in before["deliveries"] if d[3] == "dead"]
    champion = before["registry"]["registry/champion.json"]["version"]
    by_hand = _cli(
        cli,
        ["redrive", dead_id, "--subscriber", "collector"],
        ["approve", champion, "--reason", REASON],
    )
    with running_console(console.settings()) as base:
        # the URL `cashmatch ui` prints: the token becomes a cookie, then the timeline
        browser.get(f"{base}/?token={workspace_token(console.workspace)}")
        assert browser.current_url == f"{base}/"
        assert browser.find_element(By.ID, "who").text.startswith("acting as console:")
        rows = {
            row.get_attribute("data-month"): row
            for row in browser.find_elements(By.CSS_SELECTOR, "#timeline tbody tr")
        }
        assert set(CLOSED) <= set(rows), rows.keys()
        first = rows[CLOSED[0]].find_elements(By.TAG_NAME, "td")
        # The first month's candidate became the first champion (a later, fresher one may
        # have replaced it since: the paired gates promote a tie trained on newer months).
        first_champion = before["registry"]["registry/champion.json"]["history"][0]["version"]
        assert first[4].text == first_champion
        assert "passed" in first[5].text and "waiting" in first[5].text
        assert first[6].text == first_champion and first[7].text == "–"  # not deployed
        # Nothing was deployed (approval pending), so no version served the month: not scored.
        assert all("not scored yet" in c.text for c in first[9:11])
        second = rows[CLOSED[1]].find_elements(By.TAG_NAME, "td")
        assert second[5].find_element(By.CLASS_NAME, "verdict-words").text
        _shoot(browser, screenshots, "timeline")
        _shoot(browser, screenshots, "timeline-phone", phone=True)
        browser.set_window_size(390, 844)
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0, "on a phone only the tables scroll sideways, not the page"
        browser.set_window_size(1280, 900)

        # a model page: the later month's candidate
        candidate = second[4].text
        second[4].find_element(By.TAG_NAME, "a").click()
        assert browser.find_element(By.TAG_NAME, "h1").text == f"Model {candidate}"
        metrics = browser.find_element(By.CSS_SELECTOR, "#metrics table").text
        assert "candidate" in metrics and "champion" in metrics and "rules" in metrics
        assert browser.find_elements(By.CSS_SELECTOR, "#evaluation-report svg")
        assert browser.find_elements(By.CSS_SELECTOR, "#curves svg")
        lineage = browser.find_element(By.ID, "lineage-months").text
        assert CLOSED[1] in lineage
        _shoot(browser, screenshots, "model")

        # redrive the dead letter: button, confirmation, POST
        browser.get(f"{base}/events")
        row = browser.find_element(By.CSS_SELECTOR, f'tr[data-event="{dead_id}"]')
        assert "no transfers booked" in row.text
        _shoot(browser, screenshots, "events")
        row.find_element(By.CLASS_NAME, "redrive").click()
        assert dead_id in browser.find_element(By.ID, "what").text
        _shoot(browser, screenshots, "confirm-redrive")
        browser.find_element(By.ID, "confirm").click()
        assert browser.find_element(By.ID, "message").text == (
            f"redriven 1 delivery of {dead_id} to collector"
        )

        # approve the champion that waits for approval
        browser.get(f"{base}/models/{champion}")
        browser.find_element(By.ID, "approve").click()
        reason = browser.find_element(By.ID, "reason")
        reason.clear()
        reason.send_keys(REASON)
        browser.find_element(By.ID, "confirm").click()
        done = browser.find_element(By.ID, "message").text
        assert done.startswith(f"{champion} approved by console:"), done
        browser.get(f"{base}/models/{champion}")
        assert browser.find_element(By.ID, "approval-state").text == "approved"
        _shoot(browser, screenshots, "model-approved")

    said, _ = by_hand.communicate(timeout=300)
    assert by_hand.returncode == 0, said
    assert f"{champion} approved by cli:" in said
    by_console, by_cli = _state(console), _state(cli)
    assert by_console != before, "the clicks changed something"
    for part in by_cli:
        assert by_console[part] == by_cli[part], f"{part} differ between console and CLI"
    redriven = [d for d in by_console["deliveries"] if d[0] == dead_id]
    assert [d[3] for d in redriven] == ["pending"]
    approval = by_console["registry"][f"registry/approvals/{champion}.json"]
    assert approval["approved"] and approval["reason"] == REASON
    new_messages = set(by_console["messages"]) - set(before["messages"])
    assert len(new_messages) == 1, "approving republished the verdict once"
    assert [a[0] for a in by_console["actions"]] == ["approve", "redrive"]
    print(f"console screenshots: {screenshots}")
