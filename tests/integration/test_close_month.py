"""The scheduled close (entrypoints/close_month.py): month.closed once per month, on any retry."""

from __future__ import annotations

import datetime as dt

import pytest

from cashmatch.bootstrap import bootstrap
from cashmatch.entrypoints.close_month import main, previous_month
from cashmatch.settings import load_settings

pytestmark = pytest.mark.integration


def test_previous_month_crosses_the_year():
    assert previous_month(dt.date(2026, 1, 15)) == "2025-12"
    assert previous_month(dt.date(2025, 3, 1)) == "2025-02"


def test_a_retried_close_publishes_the_month_once(tmp_path, monkeypatch):
    monkeypatch.setenv("CASHMATCH_WORKSPACE", str(tmp_path / "ws"))
    assert main(["--month", "2025-03"]) == 0
    assert main(["--month", "2025-03"]) == 0  # the job retried, or run twice
    assert main(["--month", "2025-04"]) == 0
    bus = bootstrap(load_settings()).bus
    closed = bus.log(limit=50, topic="month.closed")
    months = sorted(r.attributes.get("month") for r in closed if r.subscription == "collector")
    assert months == ["2025-03", "2025-04"]


def test_a_bad_month_publishes_nothing(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CASHMATCH_WORKSPACE", str(tmp_path / "ws"))
    assert main(["--month", "2025-13"]) == 2
    assert "not published" in caplog.text
    assert bootstrap(load_settings()).bus.log(limit=50, topic="month.closed") == []
