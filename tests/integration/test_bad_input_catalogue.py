"""Every kind of bad input, tried on the local stack: each is parked or quarantined with its
reason and nothing is lost. The suite prints how many of each kind it tried (see conftest)."""

from __future__ import annotations

import json

import duckdb
import pytest

from cashmatch.domain.events import DatasetReady, MonthClosed, make_event
from cashmatch.entrypoints.service_table import HANDLERS
from cashmatch.service_layer.dispatch import run_until_idle
from cashmatch.service_layer.publishing import publish_event

pytestmark = pytest.mark.integration

GOOD = json.loads(make_event(MonthClosed(month="2025-03"), source="/t").to_bytes())


def envelope(**changes) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


MALFORMED_EVENTS = {
    "not JSON": (b"{nope", "not JSON"),
    "empty body": (b"", "not JSON"),
    "JSON array": (b"[1]", "JSON object"),
    "not UTF-8": (b"\xff\xfe\x00", "not JSON"),
    "missing id": (json.dumps({k: v for k, v in GOOD.items() if k != "id"}).encode(), "id"),
    "wrong specversion": (envelope(specversion="0.3"), "specversion"),
    "unknown type": (envelope(type="com.cashmatch.nope.v1"), "unknown event type"),
    "type of another service": (envelope(type="com.cashmatch.dataset.ready.v1"), "dataset_uri"),
    "missing month": (envelope(data={}), "month: Field required"),
    "month badly formatted": (envelope(data={"month": "03/2025"}), "YYYY-MM"),
    "unknown field": (envelope(data={"month": "2025-03", "extra": 1}), "Extra inputs"),
    "month in the future": (envelope(data={"month": "2099-01"}), "not over yet"),
    "month with no data": (envelope(data={"month": "2010-01"}), "no transfers booked in 2010-01"),
    "bad time": (envelope(time="yesterday"), "time"),
}


def test_every_malformed_event_is_parked_with_its_reason(make_ports, small_warehouse, bad_inputs):
    ports = make_ports(warehouse=str(small_warehouse))
    for name, (data, _) in MALFORMED_EVENTS.items():
        ports.bus.publish("month.closed", data, {"case": name}, message_id=f"bad-{name}")
    run_until_idle(ports, HANDLERS, timeout_s=120)
    dead = {r.message_id.removeprefix("bad-"): r for r in ports.bus.dead_letters()}
    for name, (_, reason) in MALFORMED_EVENTS.items():
        assert name in dead, f"{name} was not parked"
        assert reason in dead[name].detail, (name, dead[name].detail)
        assert dead[name].attempts == 1, f"{name} was retried"
    bad_inputs["malformed events parked"] = len(MALFORMED_EVENTS)


def test_a_dataset_ready_naming_no_manifest_is_parked_by_every_reader(
    make_ports, small_warehouse, bad_inputs
):
    ports = make_ports(warehouse=str(small_warehouse))
    inside = ports.blobs.uri("datasets/manifests/2025-03.json")  # a key nothing was written to
    for name, uri in {
        "outside the store": "file:///etc/passwd",
        "no such manifest": inside,
    }.items():
        ready = DatasetReady(
            month="2025-03",
            dataset_uri=uri,
            dataset_version="ds-x",
            training_months=["2025-03"],
            test_set_version="ts-x",
            test_set_created=False,
            rows={},
            caused_by="by-hand",
        )
        event = make_event(ready, source="/t").model_copy(update={"id": f"ready-{name}"})
        publish_event(ports.bus, event)
    run_until_idle(ports, HANDLERS, timeout_s=120)
    dead = ports.bus.dead_letters()
    assert {(r.message_id, r.subscription) for r in dead} == {
        (f"ready-{name}", service)
        for name in ("outside the store", "no such manifest")
        for service in ("trainer", "monitor")
    }
    assert all(r.attempts == 1 and "no dataset manifest at" in r.detail for r in dead), dead
    bad_inputs["dataset.ready naming no manifest, parked"] = len(dead)


BAD_ROWS = {
    "transfer amount zero": (
        "INSERT INTO transfers VALUES ('BAD-T1','2025-03-10','incoming',0,'PLN','X',NULL,'t')",
        "transfers",
        "BAD-T1",
        "amount must be > 0",
    ),
    "transfer direction unknown": (
        "INSERT INTO transfers VALUES ('BAD-T2','2025-03-10','sideways',5,'PLN','X',NULL,'t')",
        "transfers",
        "BAD-T2",
        "direction not incoming/outgoing",
    ),
    "transfer currency not ISO": (
        "INSERT INTO transfers VALUES ('BAD-T3','2025-03-10','incoming',5,'zloty','X',NULL,'t')",
        "transfers",
        "BAD-T3",
        "currency not ISO 4217",
    ),
    "invoice due before issue": (
        "INSERT INTO invoices VALUES ('BAD-I1','FV/1','receivable','C','N',NULL,NULL,'PLN',"
        "10,'2025-03-10','2025-03-01')",
        "invoices",
        "BAD-I1",
        "due_date before issue_date",
    ),
    "label of an unknown invoice": (
        "INSERT INTO transfers VALUES ('BAD-T4','2025-03-11','incoming',5,'PLN','X',NULL,'t');"
        "INSERT INTO matches VALUES ('BAD-T4','NO-SUCH-INVOICE',5,'2025-03-12 00:00:00')",
        "matches",
        "BAD-T4/NO-SUCH-INVOICE",
        "invoice unknown or not open",
    ),
    "labels over the transfer amount": (
        "INSERT INTO invoices VALUES ('BAD-I2','FV/2','receivable','C','N',NULL,NULL,'PLN',"
        "500,'2025-03-01','2025-03-20');"
        "INSERT INTO transfers VALUES ('BAD-T5','2025-03-11','incoming',5,'PLN','X',NULL,'t');"
        "INSERT INTO matches VALUES ('BAD-T5','BAD-I2',50,'2025-03-12 00:00:00')",
        "matches",
        "BAD-T5/BAD-I2",
        "labels apply more than the transfer amount",
    ),
    "label pairing the wrong directions": (
        "INSERT INTO invoices VALUES ('BAD-I3','FV/3','payable','C','N',NULL,NULL,'PLN',"
        "5,'2025-03-01','2025-03-20');"
        "INSERT INTO transfers VALUES ('BAD-T6','2025-03-11','incoming',5,'PLN','X',NULL,'t');"
        "INSERT INTO matches VALUES ('BAD-T6','BAD-I3',5,'2025-03-12 00:00:00')",
        "matches",
        "BAD-T6/BAD-I3",
        "directions do not pair",
    ),
    "transfer amount infinite": (
        "INSERT INTO transfers VALUES ('BAD-T7','2025-03-10','incoming','inf','PLN','X',NULL,'t')",
        "transfers",
        "BAD-T7",
        "amount not a finite number",
    ),
    "invoice amount infinite": (
        "INSERT INTO invoices VALUES ('BAD-I4','FV/4','receivable','C','N',NULL,NULL,'PLN',"
        "'-inf','2025-03-01','2025-03-20')",
        "invoices",
        "BAD-I4",
        "amount not a finite number",
    ),
    "invoice amount missing": (
        "INSERT INTO invoices VALUES ('BAD-I6','FV/6','receivable','C','N',NULL,NULL,'PLN',"
        "NULL,'2025-03-01','2025-03-20')",
        "invoices",
        "BAD-I6",
        "amount is null",
    ),
    "label amount infinite": (
        "INSERT INTO invoices VALUES ('BAD-I5','FV/5','receivable','C','N',NULL,NULL,'PLN',"
        "5,'2025-03-01','2025-03-20');"
        "INSERT INTO transfers VALUES ('BAD-T8','2025-03-11','incoming',5,'PLN','X',NULL,'t');"
        "INSERT INTO matches VALUES ('BAD-T8','BAD-I5','inf','2025-03-12 00:00:00')",
        "matches",
        "BAD-T8/BAD-I5",
        "amount not a finite number",
    ),
    "label without a time": (
        "INSERT INTO transfers VALUES ('BAD-T9','2025-03-11','incoming',5,'PLN','X',NULL,'t');"
        "INSERT INTO matches VALUES ('BAD-T9','BAD-I5',5,NULL)",
        "matches",
        "BAD-T9/BAD-I5",
        "matched_at is null",
    ),
    "transfer without an id": (
        "INSERT INTO transfers VALUES (NULL,'2025-03-10','incoming',5,'PLN','X',NULL,'t')",
        "transfers",
        "<missing>",
        "transfer_id is null",
    ),
    "transfer without a booking date": (
        "INSERT INTO transfers VALUES ('BAD-T10',NULL,'incoming',5,'PLN','X',NULL,'t');"
        "INSERT INTO matches VALUES ('BAD-T10','BAD-I5',5,'2025-03-12 00:00:00')",
        "transfers",
        "BAD-T10",
        "booking_date is null",
    ),
    "label of a transfer without a booking date": (
        "",
        "matches",
        "BAD-T10/BAD-I5",
        "its transfer has no booking_date",
    ),
    "label without a transfer": (
        "INSERT INTO matches VALUES (NULL,'BAD-I5',5,'2025-03-12 00:00:00')",
        "matches",
        "/BAD-I5",
        "transfer_id is null",
    ),
    "invoice without an issue date": (
        "INSERT INTO invoices VALUES ('BAD-I7','FV/7','receivable','C','N',NULL,NULL,'PLN',"
        "5,NULL,'2025-03-20')",
        "invoices",
        "BAD-I7",
        "issue_date is null",
    ),
}


def test_every_bad_row_is_quarantined_by_key(make_ports, small_warehouse, tmp_path, bad_inputs):
    import shutil

    warehouse = tmp_path / "dirty.duckdb"
    shutil.copy(small_warehouse, warehouse)
    with duckdb.connect(str(warehouse)) as con:
        # A real source need not enforce the contract's constraints.
        for table in ("transfers", "invoices", "matches"):
            con.execute(f"CREATE TABLE {table}_loose AS SELECT * FROM {table}")
            con.execute(f"DROP TABLE {table}")
            con.execute(f"ALTER TABLE {table}_loose RENAME TO {table}")
            # ...nor store amounts as DECIMAL: a float column can hold an infinity.
            con.execute(f"ALTER TABLE {table} ALTER amount TYPE DOUBLE")
        for sql, *_ in BAD_ROWS.values():
            for statement in filter(None, sql.split(";")):
                con.execute(statement)
    ports = make_ports(warehouse=str(warehouse))
    ports.bus.publish(
        "month.closed", envelope(data={"month": "2025-03"}), {}, message_id="close-03"
    )
    run_until_idle(ports, HANDLERS, timeout_s=300)
    assert ports.bus.dead_letters() == []
    quarantine = ports.datasets.read_quarantine("2025-03")
    for name, (_, table, key, reason) in BAD_ROWS.items():
        rows = quarantine[(quarantine["table"] == table) & (quarantine["key"] == key)]
        assert len(rows) == 1, f"{name}: {key} not quarantined"
        assert reason in rows["reason"].iloc[0], (name, rows["reason"].iloc[0])
    kept = set(ports.datasets.read_slice("2025-03").transfers["transfer_id"])
    assert not {k for k in kept if k.startswith("BAD-")}

    # Batch matching a later month (`cashmatch match`) sets the same rows aside, by key.
    from cashmatch.service_layer.batch_matching import match_month
    from cashmatch.service_layer.model_store import load_verified

    model = load_verified(ports.blobs, ports.registry.get(ports.registry.champion()[0].version))
    predictions, set_aside = match_month(model, ports.warehouse, "2025-04")
    assert not predictions.empty and not predictions["transfer_id"].str.startswith("BAD-").any()
    assert {"BAD-I4", "BAD-I6"} <= set(set_aside.loc[set_aside["table"] == "invoices", "key"])
    bad_inputs["bad warehouse rows quarantined"] = len(BAD_ROWS)


def test_a_warehouse_value_no_type_can_carry_parks_the_month_at_once(
    make_ports, small_warehouse, tmp_path
):
    import shutil

    warehouse = tmp_path / "infinite.duckdb"
    shutil.copy(small_warehouse, warehouse)
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "UPDATE invoices SET due_date = 'infinity'::DATE WHERE invoice_id = "
            "(SELECT min(invoice_id) FROM invoices WHERE issue_date < '2025-03-01')"
        )
    ports = make_ports(warehouse=str(warehouse))
    ports.bus.publish("month.closed", envelope(data={"month": "2025-03"}), {}, message_id="inf")
    run_until_idle(ports, HANDLERS, timeout_s=120)
    (parked,) = ports.bus.dead_letters()
    assert parked.attempts == 1
    assert "cannot be read" in parked.detail and "infinity" in parked.detail
