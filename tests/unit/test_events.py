import json

import pytest

from cashmatch.domain.events import (
    PAYLOADS,
    DatasetReady,
    MalformedEvent,
    MonthClosed,
    derived_id,
    make_event,
    parse_event,
    topic_of_type,
)

pytestmark = pytest.mark.unit


def test_round_trip_keeps_type_and_payload():
    event = make_event(MonthClosed(month="2025-03"), source="/test")
    parsed = parse_event(event.to_bytes())
    assert parsed == event
    assert parsed.type == "com.cashmatch.month.closed.v1"
    assert parsed.topic == "month.closed"
    assert parsed.payload() == MonthClosed(month="2025-03")
    assert parsed.attributes()["month"] == "2025-03"


def test_every_type_is_versioned_and_maps_back_to_its_topic():
    for topic, model in PAYLOADS.items():
        assert model.event_type().endswith(".v1")
        assert topic_of_type(model.event_type()) == topic


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"id": "x"}', "type: Field required"),
    ],
)
def test_malformed_bodies_say_what_is_wrong(raw, fragment):
    with pytest.raises(MalformedEvent, match=fragment):
        parse_event(raw)


def test_unknown_type_and_bad_month_and_unknown_field_are_rejected():
    good = json.loads(make_event(MonthClosed(month="2025-03"), source="/t").to_bytes())
    with pytest.raises(MalformedEvent, match="unknown event type"):
        parse_event(json.dumps({**good, "type": "com.cashmatch.nope.v1"}).encode())
    for month in ("2025-3", "2025-13", "2025-03\n", " 2025-03", "２０２５-03", "2025-03-01"):
        with pytest.raises(MalformedEvent, match="month must look like YYYY-MM"):
            parse_event(json.dumps({**good, "data": {"month": month}}).encode())
    with pytest.raises(MalformedEvent, match="Extra inputs"):
        parse_event(json.dumps({**good, "data": {"month": "2025-03", "x": 1}}).encode())
    with pytest.raises(MalformedEvent, match="month: Field required"):
        parse_event(json.dumps({**good, "data": {}}).encode())


def test_later_events_require_lineage():
    with pytest.raises(ValueError, match="caused_by"):
        DatasetReady.model_validate(
            {
                "month": "2025-03",
                "dataset_uri": "file:///x",
                "dataset_version": "ds",
                "training_months": ["2025-03"],
                "test_set_version": "t",
                "test_set_created": True,
                "rows": {},
            }
        )


def test_derived_ids_are_deterministic_per_cause_and_topic():
    assert derived_id("a", "dataset.ready") == derived_id("a", "dataset.ready")
    assert derived_id("a", "dataset.ready") != derived_id("b", "dataset.ready")
    assert derived_id("a", "dataset.ready") != derived_id("a", "model.trained")


BINARY = {
    "ce-specversion": "1.0",
    "ce-type": "com.cashmatch.month.closed.v1",
    "ce-id": "fin-2025-10",
    "ce-source": "/finance-system",
    "ce-time": "2025-11-01T06:00:00Z",
}


def test_a_binary_mode_message_is_read_from_its_attributes():
    """The CloudEvents Pub/Sub binding's binary content mode, as a CloudEvents SDK sends it."""
    event = parse_event(b'{"month": "2025-10"}', BINARY)
    assert (event.id, event.type, event.source) == (
        "fin-2025-10",
        BINARY["ce-type"],
        "/finance-system",
    )
    assert event.payload().month == "2025-10"
    # what a structured-mode message carries as attributes does not switch the mode
    structured = parse_event(event.to_bytes(), event.attributes())
    assert structured == event


@pytest.mark.parametrize(
    ("attributes", "data", "said"),
    [
        ({k: v for k, v in BINARY.items() if k != "ce-type"}, b'{"month": "2025-10"}', "type"),
        (
            {**BINARY, "ce-type": "com.cashmatch.nope.v1"},
            b'{"month": "2025-10"}',
            "unknown event type",
        ),
        (BINARY, b'{"month": "2025-13"}', "month"),
        (BINARY, b"[1]", "binary-mode data must be a JSON object"),
        ({**BINARY, "content-type": "text/plain"}, b'{"month": "2025-10"}', "application/json"),
    ],
)
def test_a_bad_binary_mode_message_is_malformed_with_the_field_named(attributes, data, said):
    with pytest.raises(MalformedEvent, match=said):
        parse_event(data, attributes)


def test_an_event_in_binary_mode_reads_back_as_itself():
    event = make_event(MonthClosed(month="2025-03"), source="/cli")
    data, attributes = event.binary_mode()
    assert json.loads(data) == {"month": "2025-03"}
    assert attributes["ce-specversion"] == "1.0" and attributes["ce-id"] == event.id
    assert parse_event(data, attributes) == event
