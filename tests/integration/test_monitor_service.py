"""The monitor on the local stack: a closed month in, a drift report and maybe drift.detected out."""

from __future__ import annotations

import json

import pytest

from cashmatch.domain.events import DriftDetected, MonthClosed, derived_id, make_event, parse_event
from cashmatch.entrypoints.service_table import handlers
from cashmatch.service_layer.dispatch import run_until_idle
from cashmatch.service_layer.handlers.monitor import (
    champion_before,
    monitor,
    report_key,
    summary_key,
)
from cashmatch.service_layer.publishing import publish_event
from tests.fakes.models import model_record

pytestmark = pytest.mark.integration


def close(ports, month: str, services: list[str] | None = None) -> None:
    publish_event(ports.bus, make_event(MonthClosed(month=month), source="/test"))
    run_until_idle(ports, handlers(services), timeout_s=300)


def dataset_ready(ports, month: str):
    ids = dict.fromkeys(r.message_id for r in ports.bus.log(topic="dataset.ready", limit=100))
    events = [parse_event(ports.bus.get_message(i)[1]) for i in ids]
    (event,) = [e for e in events if e.data["month"] == month]
    return event


@pytest.fixture(scope="module")
def shifted_warehouse(tmp_path_factory):
    """Like the small warehouse, but customers change their habits from 2025-04 on."""
    from cashmatch.synth import SynthConfig, generate, write_warehouse

    path = tmp_path_factory.mktemp("shifted") / "shifted.duckdb"
    config = SynthConfig(months=5, start="2025-01", scale=0.2, seed=11, shift_from="2025-04")
    write_warehouse(generate(config), path)
    return path


def test_report_of_a_month_checked_against_the_previous_champion(make_ports, small_warehouse):
    ports = make_ports(warehouse=str(small_warehouse))
    close(ports, "2025-02")  # the whole chain: a champion trained on 2025-01..02
    champion = ports.registry.champion()[0].version
    assert champion is not None
    close(ports, "2025-03", ["collector"])
    event = dataset_ready(ports, "2025-03")

    outcome = monitor(event, ports)
    assert "2025-03" in outcome
    html = ports.blobs.get(report_key("2025-03")).data.decode()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "<script" not in html
    summary = json.loads(ports.blobs.get(summary_key("2025-03")).data)
    assert summary["caused_by"] == event.id
    assert summary["reference_months"] == ["2025-01", "2025-02"]
    assert summary["champion_version"] == champion
    assert summary["performance"]["metric"] == "auto_rate@99"
    assert summary["report_uri"] == ports.blobs.uri(report_key("2025-03"))
    assert champion in html  # the performance table names the champion checked

    # A redelivery changes nothing and publishes nothing new.
    before = ports.blobs.get(report_key("2025-03")).generation
    published = len(ports.bus.log(limit=1000))
    assert monitor(event, ports) == outcome
    assert ports.blobs.get(report_key("2025-03")).generation == before
    assert len(ports.bus.log(limit=1000)) == published
    # A republish (a new event about the same dataset) rewrites nothing either.
    summary_at = ports.blobs.get(summary_key("2025-03")).generation
    again = event.model_copy(update={"id": "republished-by-hand"})
    assert monitor(again, ports) == outcome
    assert ports.blobs.get(report_key("2025-03")).generation == before
    assert ports.blobs.get(summary_key("2025-03")).generation == summary_at


def test_the_champion_checked_is_the_one_trained_before_the_month(make_ports):

    ports = make_ports()
    registry = ports.registry
    for version, last in (("m-1", "2025-02"), ("m-2", "2025-03"), ("m-3", "2025-04")):
        registry.register(model_record(version, training_months=["2025-01", last]))
        registry.promote(version, registry.champion()[1], by="test", reason="better")
    # By the time the monitor runs, a model trained on the month itself may be champion.
    assert champion_before(ports, "2025-04") == "m-2"
    assert champion_before(ports, "2025-05") == "m-3"
    assert champion_before(ports, "2025-02") is None


def test_drift_detected_when_habits_shift(make_ports, shifted_warehouse):
    ports = make_ports(warehouse=str(shifted_warehouse))
    close(ports, "2025-03", ["collector"])
    close(ports, "2025-04", ["collector"])
    event = dataset_ready(ports, "2025-04")

    outcome = monitor(event, ports)
    assert outcome.startswith("drift in 2025-04")
    topic, data, _ = ports.bus.get_message(derived_id(event.id, "drift.detected"))
    assert topic == "drift.detected"
    drift = parse_event(data)
    payload = drift.payload()
    assert isinstance(payload, DriftDetected)
    assert "reference_rate" in payload.drifted_columns
    assert payload.caused_by == event.id
    assert payload.dataset_version == event.data["dataset_version"]
    assert payload.champion_version is None  # no model was trained in this test
    assert ports.blobs.key_from_uri(payload.report_uri) == report_key("2025-04")
    assert "DRIFT" in ports.blobs.get(report_key("2025-04")).data.decode()

    # Redelivered: the same event id, not a second alert.
    monitor(event, ports)
    assert len(ports.bus.log(topic="drift.detected", limit=100)) == 1


def test_nothing_to_compare_in_the_first_month(make_ports, small_warehouse):
    ports = make_ports(warehouse=str(small_warehouse))
    close(ports, "2025-01", ["collector"])
    outcome = monitor(dataset_ready(ports, "2025-01"), ports)
    assert "nothing to compare" in outcome
    assert not ports.blobs.exists(report_key("2025-01"))
