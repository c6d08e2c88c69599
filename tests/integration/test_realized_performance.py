"""The promise checked at every close: realized precision of the served version's own auto
decisions, a breach announced once, and the guardrail's threshold override set once."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from cashmatch.bootstrap import bootstrap
from cashmatch.domain.events import ModelDeployed, MonthClosed, make_event, parse_event
from cashmatch.entrypoints.service_table import HANDLERS, handlers
from cashmatch.service_layer import performance_records
from cashmatch.service_layer.batch_matching import match_month
from cashmatch.service_layer.dispatch import handle_bytes, run_until_idle
from cashmatch.service_layer.model_store import load_verified
from cashmatch.service_layer.publishing import publish_event
from cashmatch.settings import load_settings

pytestmark = pytest.mark.integration
CASHMATCH = str(Path(sys.executable).with_name("cashmatch"))
# The breach scenario runs what answers a close and a breach, not the retraining: a candidate
# trained on the corrupted month would take the deployed slot and make the answer depend on it.
WATCHING = ["collector", "monitor", "guardrail", "alert-breached"]


def _close(ports, month: str, names=None) -> None:
    publish_event(ports.bus, make_event(MonthClosed(month=month), source="/test"))
    run_until_idle(ports, handlers(names), timeout_s=300)


def _events(ports, topic: str) -> list:
    ids = dict.fromkeys(r.message_id for r in ports.bus.log(topic=topic, limit=500))
    return [parse_event(ports.bus.get_message(i)[1]) for i in ids]


@pytest.fixture(scope="module")
def chain(small_warehouse, tmp_path_factory):
    """Months 1-3 closed (the first champion, deployed), then month 4 closed by the chain."""
    root = tmp_path_factory.mktemp("realized")
    warehouse = root / "warehouse.duckdb"
    shutil.copy(small_warehouse, warehouse)
    ports = bootstrap(
        load_settings(workspace=root / "workspace", warehouse=str(warehouse), min_backoff_s=0.0)
    )
    _close(ports, "2025-03")
    _close(ports, "2025-04")
    return ports, warehouse


def test_a_close_scores_the_version_that_served_it(chain):
    ports, _ = chain
    deployed = ports.registry.deployed()[0].history[0].version
    records = performance_records.months_realized(ports)
    assert list(records) == ["2025-04"], "the backfill months had no served version"
    (record,) = records["2025-04"]
    assert record.version == deployed and record.threshold_source == "model"
    assert record.transfers > 100 and record.auto > 0
    assert record.state in {"holds", "unconfirmed", "breached"}
    assert set(record.by_direction) and set(record.by_currency)


def test_realized_figures_equal_the_cli_csv_scored_independently(chain, tmp_path):
    ports, warehouse = chain
    (record,) = performance_records.months_realized(ports)["2025-04"]
    out = tmp_path / "april.csv"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASHMATCH_")}
    done = subprocess.run(
        [
            CASHMATCH,
            "--workspace",
            str(ports.settings.workspace),
            "--warehouse",
            str(warehouse),
            "match",
            "--month",
            "2025-04",
            "--version",
            record.version,
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    csv = pd.read_csv(out, dtype={"transfer_id": str, "invoice_id": str})
    with duckdb.connect(str(warehouse), read_only=True) as con:
        labels = con.execute("SELECT transfer_id, invoice_id FROM matches").df()
    truth = labels.groupby("transfer_id")["invoice_id"].agg(frozenset)
    answered = csv.groupby("transfer_id")
    auto = right = 0
    for transfer_id, rows in answered:
        if (rows["decision"] == "auto").any():
            auto += 1
            proposed = frozenset(rows["invoice_id"].dropna())
            right += proposed == truth.get(transfer_id, frozenset())
    assert (record.transfers, record.auto, record.auto_correct) == (len(answered), auto, right)


def test_a_redelivered_close_changes_no_record(chain):
    ports, _ = chain
    key = performance_records.record_key(
        "2025-04", performance_records.months_realized(ports)["2025-04"][0].version
    )
    before = ports.blobs.get(key)
    (ready,) = [e for e in _events(ports, "dataset.ready") if e.data["month"] == "2025-04"]
    for _ in range(3):
        handle_bytes("monitor", HANDLERS["monitor"], ready.to_bytes(), ports)
    after = ports.blobs.get(key)
    assert (after.data, after.generation) == (before.data, before.generation)


@pytest.fixture
def corrupted(small_warehouse, tmp_path):
    """A chain whose month 5 labels contradict 25 of the deployed version's surest-looking
    mistakes-to-be: the least confident of its auto decisions, so a higher cut restores it."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(small_warehouse, warehouse)
    ports = bootstrap(
        load_settings(workspace=tmp_path / "workspace", warehouse=str(warehouse), min_backoff_s=0.0)
    )
    _close(ports, "2025-03")
    version = ports.registry.deployed()[0].version
    model = load_verified(ports.blobs, ports.registry.get(version))
    predictions, _ = match_month(model, ports.warehouse, "2025-05")
    # Auto decisions that settle something: deleting their labels makes each one wrong.
    settling = predictions[(predictions["decision"] == "auto") & predictions["invoice_id"].notna()]
    auto = settling.groupby("transfer_id")["confidence"].max()
    wrong = auto.sort_values(kind="stable").index[:25].tolist()
    with duckdb.connect(str(warehouse)) as con:
        con.execute("DELETE FROM matches WHERE transfer_id IN (SELECT unnest(?))", [wrong])
    return ports, version, model.threshold


def test_a_breach_is_announced_once_and_the_override_set_once(corrupted):
    ports, version, own_threshold = corrupted
    _close(ports, "2025-05", WATCHING)
    (record,) = performance_records.months_realized(ports)["2025-05"]
    assert record.state == "breached" and record.auto_correct <= record.auto - 25
    (breach,) = _events(ports, "performance.breached")
    assert breach.data["model_version"] == version
    override = ports.registry.guardrail()[0].override
    assert override is not None and override.version == version
    assert override.threshold == record.holding_threshold > own_threshold
    assert override.by == breach.id

    # Five more deliveries of the close to the monitor and of the breach to the guardrail.
    (ready,) = [e for e in _events(ports, "dataset.ready") if e.data["month"] == "2025-05"]
    for _ in range(5):
        handle_bytes("monitor", HANDLERS["monitor"], ready.to_bytes(), ports)
        handle_bytes("guardrail", HANDLERS["guardrail"], breach.to_bytes(), ports)
    assert len(_events(ports, "performance.breached")) == 1
    assert len(ports.registry.guardrail()[0].history) == 1

    # A republished close (a new event id) breaches nothing new either.
    _close(ports, "2025-05", WATCHING)
    assert len(_events(ports, "performance.breached")) == 1
    assert len(ports.registry.guardrail()[0].history) == 1

    # At the raised threshold the month would have held: that is what the override is for.
    model = load_verified(ports.blobs, ports.registry.get(version))
    predictions, _ = match_month(model.at_threshold(override.threshold), ports.warehouse, "2025-05")
    kept = set(predictions.loc[predictions["decision"] == "auto", "transfer_id"])
    assert kept and kept < set(
        predictions.loc[predictions["confidence"] >= own_threshold, "transfer_id"]
    )


def test_the_guardrail_leaves_a_version_that_no_longer_serves_alone(corrupted):
    ports, _, _ = corrupted
    _close(ports, "2025-05", ["collector", "monitor"])
    (breach,) = _events(ports, "performance.breached")
    registry = ports.registry
    # Another version took the slot (say a person rolled back) before the breach was handled.
    moved = registry.deployed()[0].model_copy(update={"version": "m-someone-else"})
    registry.blobs.put("registry/deployed.json", moved.model_dump_json().encode())
    outcome = handle_bytes("guardrail", HANDLERS["guardrail"], breach.to_bytes(), ports)
    assert "no longer serves" in outcome
    assert registry.guardrail()[0].override is None


def test_every_rollout_records_the_open_months_estimate_beside_its_realized_figure(chain):
    ports, _ = chain
    first = ports.registry.deployed()[0].history[0].version
    recorded = performance_records.rollout_estimate(ports, "2025-04", first)
    assert recorded is not None and recorded["why_not"] is None
    assert recorded["after_close_of"] == "2025-03" and recorded["estimate"]["transfers"] > 100
    (row,) = [r for r in performance_records.summary_rows(ports) if r["month"] == "2025-04"]
    # Every transfer of the month was booked at the roll-out: the same decisions, the same promise.
    assert row["estimated_precision_at_rollout"] == pytest.approx(row["estimated_precision"])
    assert row["estimated_auto_share_at_rollout"] == pytest.approx(row["auto_share"])


def test_an_estimate_that_cannot_be_made_is_recorded_with_why_and_fails_nothing(chain):
    ports, _ = chain
    deployed = ports.registry.deployed()[0]
    rolled = make_event(
        ModelDeployed(
            month="2025-05",  # the month after it, 2025-06, has nothing booked
            model_version=deployed.version,
            dataset_version="ds-x",
            endpoint=deployed.endpoint or "local",
            caused_by="test",
        ),
        source="/test",
    )
    key = performance_records.estimate_key("2025-06", deployed.version)
    generations = []
    for _ in range(3):  # redelivered: recorded once
        outcome = handle_bytes("estimator", HANDLERS["estimator"], rolled.to_bytes(), ports)
        assert "no estimate" in outcome
        generations.append(ports.blobs.get(key).generation)
    assert len(set(generations)) == 1
    recorded = performance_records.rollout_estimate(ports, "2025-06", deployed.version)
    assert recorded["estimate"] is None
    assert recorded["why_not"] == "ValueError: no transfers booked in 2025-06"


def test_the_months_drift_report_charts_its_own_realized_point(chain):
    ports, _ = chain
    from cashmatch.service_layer.reporting.store import drift_report_key

    page = ports.blobs.get(drift_report_key("2025-04")).data.decode()
    assert "The promise month by month" in page and "target 99%" in page
    (points,) = re.findall(r'<polyline points="([^"]*)"[^>]*><title>realized</title>', page)
    assert len(points.split()) == 1  # 2025-04, the first month a deployed version served


def test_a_close_republished_after_its_own_model_rolled_out_finds_the_version_that_served(chain):
    """Months later, 2025-04's own model (trained on its labels) is deployed: a republished
    close must still find the version that decided 2025-04, not nothing."""
    import datetime as dt

    from cashmatch.service_layer.performance import served_versions

    ports, _ = chain
    recorded = [r.version for r in performance_records.months_realized(ports)["2025-04"]]
    deployed = ports.registry.deployed()[0]
    newest = ports.registry.get(deployed.version)
    assert "2025-04" in newest.training_months, "the chain did not roll out 2025-04's own model"
    later = deployed.history[-1].at + dt.timedelta(days=90)
    assert served_versions(ports, "2025-04", later) == recorded
