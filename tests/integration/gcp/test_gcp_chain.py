"""The whole chain for two months on the gcp stack: BigQuery (bqemulator), Cloud Storage
(gcp-storage-emulator) and Pub/Sub (the fake server), wired by cashmatch.bootstrap.

Pub/Sub's push delivery to Cloud Run is not emulated: the test pulls each subscription and hands
every delivery to cashmatch.service_layer.dispatch.dispatch, as the CLI's worker does."""

from __future__ import annotations

import time
import uuid

import pandas as pd
import pytest

from cashmatch.adapters.gcp.warehouse import bigquery_schema
from cashmatch.bootstrap import bootstrap
from cashmatch.domain.contract import TABLES
from cashmatch.domain.events import MonthClosed, make_event, parse_event
from cashmatch.entrypoints.service_table import HANDLERS
from cashmatch.service_layer.dispatch import dispatch
from cashmatch.service_layer.publishing import publish_event
from cashmatch.settings import load_settings
from cashmatch.synth import SynthConfig, generate

pytestmark = pytest.mark.integration


def load_warehouse(client, dataset: str, data) -> None:
    """The synthesized tables as BigQuery tables with the contract's types (NUMERIC amounts)."""
    from google.cloud import bigquery

    client.create_dataset(dataset)
    for name, frame in (
        ("invoices", data.invoices),
        ("transfers", data.transfers),
        ("matches", data.matches),
    ):
        table = TABLES[name]
        columns: dict[str, list[str | None]] = {}
        for column in table.columns:
            values = frame[column.name]
            if column.kind == "decimal":
                columns[column.name] = [f"{v:.2f}" for v in values]  # exact NUMERIC, no floats
            elif column.kind == "date":
                columns[column.name] = pd.to_datetime(values).dt.strftime("%Y-%m-%d").tolist()
            elif column.kind == "timestamp":
                columns[column.name] = (
                    pd.to_datetime(values).dt.strftime("%Y-%m-%dT%H:%M:%S").tolist()
                )
            else:
                columns[column.name] = [None if pd.isna(v) else str(v) for v in values]
        rows = [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]
        config = bigquery.LoadJobConfig(schema=bigquery_schema(table))
        client.load_table_from_json(rows, f"{dataset}.{name}", job_config=config).result()


def run_until_idle(ports, *, timeout_s: float = 300.0) -> list[tuple[str, str, str]]:
    """Pull every subscription and dispatch until the journal has nothing pending."""
    outcomes = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        progressed = False
        for service in HANDLERS:
            for delivery in ports.bus.pull(service, max_messages=1):
                outcomes.append(
                    (
                        service,
                        delivery.message_id,
                        dispatch(service, HANDLERS[service], delivery, ports),
                    )
                )
                progressed = True
        if not progressed and ports.bus.pending() == 0:
            return outcomes
    raise AssertionError(f"still busy after {timeout_s} s: {outcomes}")


def events_on(ports, topic: str) -> list:
    """The events published on a topic (the log has a record per subscription: one each)."""
    ids = dict.fromkeys(r.message_id for r in ports.bus.log(topic=topic, limit=1000))
    return [parse_event(ports.bus.get_message(i)[1]) for i in ids]


@pytest.fixture
def gcp_ports(gcs_emulator, bq_emulator, pubsub_server, monkeypatch):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.host)
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", bq_emulator.host)
    bucket = f"chain-{uuid.uuid4().hex[:12]}"
    storage.Client(project="test", credentials=AnonymousCredentials()).create_bucket(bucket)
    dataset = f"{bq_emulator.project}.chain_{uuid.uuid4().hex[:12]}"
    data = generate(SynthConfig(months=3, start="2025-01", scale=0.2, seed=11))
    load_warehouse(bq_emulator.client(), dataset, data)
    settings = load_settings(
        stack="gcp",
        project=bq_emulator.project,
        bucket=bucket,
        warehouse=dataset,
        min_backoff_s=0.0,
        max_backoff_s=0.0,
    )
    ports = bootstrap(settings)
    yield ports
    ports.bus.close()  # type: ignore[attr-defined]


def test_two_months_through_the_whole_chain(gcp_ports):
    ports = gcp_ports
    ports.warehouse.check_schema()
    assert ports.warehouse.month_bounds() == ("2025-01", "2025-03")

    for month in ("2025-02", "2025-03"):
        publish_event(ports.bus, make_event(MonthClosed(month=month), source="/test"))
        outcomes = run_until_idle(ports)
        assert {service for service, _, _ in outcomes} >= {"collector", "trainer", "evaluator"}
        failures = [o for o in outcomes if o[2].startswith(("failed", "parked"))]
        assert not failures, failures

    assert ports.bus.dead_letters() == []
    ready = events_on(ports, "dataset.ready")
    trained = events_on(ports, "model.trained")
    assert sorted(e.data["month"] for e in ready) == ["2025-02", "2025-03"], [
        (e.id, e.source, e.data["caused_by"]) for e in ready
    ]
    assert len(trained) == 2
    assert all(e.data["dataset_uri"].startswith(f"gs://{ports.settings.bucket}/") for e in ready)
    assert all(e.data["model_uri"].startswith("gs://") for e in trained)

    champion, _ = ports.registry.champion()
    assert champion.version in {e.data["model_version"] for e in trained}
    assert {r.version for r in ports.registry.versions()} == {
        e.data["model_version"] for e in trained
    }
    deployed, _ = ports.registry.deployed()
    assert deployed.version == champion.version
    assert {r.state for r in ports.bus.log(limit=1000) if r.subscription} == {"done"}
