"""The chain in one process on the local stack: duplicates, races, out-of-order delivery,
tampered artifacts. Faster than the CLI tests, so the awkward cases live here."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from cashmatch.domain.evaluation.scoring import score, score_rules
from cashmatch.domain.events import MonthClosed, make_event, parse_event
from cashmatch.domain.matching import rules_baseline
from cashmatch.entrypoints.service_table import HANDLERS
from cashmatch.service_layer.dispatch import dispatch, handle_bytes, run_until_idle
from cashmatch.service_layer.handlers import evaluator
from cashmatch.service_layer.publishing import publish_event

pytestmark = pytest.mark.integration


@pytest.fixture
def ports(make_ports, small_warehouse):
    return make_ports(warehouse=str(small_warehouse))


def close(ports, month: str) -> None:
    publish_event(ports.bus, make_event(MonthClosed(month=month), source="/test"))
    run_until_idle(ports, HANDLERS, timeout_s=300)


def events_on(ports, topic: str) -> list:
    ids = dict.fromkeys(r.message_id for r in ports.bus.log(topic=topic, limit=500))
    return [parse_event(ports.bus.get_message(i)[1]) for i in ids]


def snapshot(ports) -> dict[str, bytes]:
    root = ports.blobs.root  # type: ignore[attr-defined]
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".locks" not in p.parts
    }


def test_every_event_delivered_five_times_changes_nothing(ports):
    sent = []

    class Recorder:
        def notify(self, alert):
            sent.append(alert.title)
            return True

    ports.notifier = Recorder()
    close(ports, "2025-03")
    assert sent == [f"Model {ports.registry.deployed()[0].version} deployed"]
    before = snapshot(ports)
    published_before = len(ports.bus.log(limit=1000))
    # Redeliver each event of the chain to its service five more times.
    for service, topic in (
        ("collector", "month.closed"),
        ("trainer", "dataset.ready"),
        ("monitor", "dataset.ready"),
        ("evaluator", "model.trained"),
        ("deployer", "evaluation.passed"),
        ("alert-deployed", "model.deployed"),
        ("estimator", "model.deployed"),
    ):
        (event,) = events_on(ports, topic)
        for _ in range(5):
            handle_bytes(service, HANDLERS[service], event.to_bytes(), ports)
    after = snapshot(ports)
    changed = {k for k in before if before[k] != after.get(k)}
    assert set(after) == set(before), "no new files"
    assert changed == set(), f"files rewritten with other content: {changed}"
    assert len(ports.bus.log(limit=1000)) == published_before, "no new events"
    assert len(ports.registry.versions()) == 1
    assert len(sent) == 1, "no second alert"


def test_test_transfers_never_reach_training_even_when_a_backfill_month_is_redone(ports):
    def collect(month: str) -> None:
        event = make_event(MonthClosed(month=month), source="/test")
        assert handle_bytes("collector", HANDLERS["collector"], event.to_bytes(), ports).startswith(
            "dataset ds-"
        )

    collect("2025-03")  # the backfill: months 1-3, and the frozen test set
    collect("2025-02")  # a month inside the backfill, closed again by hand
    collect("2025-04")
    datasets = ports.datasets
    test_ids = set(datasets.test_set().transfers["transfer_id"])
    assert test_ids
    for month in ["2025-01", "2025-02", "2025-03", "2025-04"]:
        part = datasets.read_slice(month)
        trained = set(part.transfers["transfer_id"])
        assert trained, month
        assert not trained & test_ids, month
        assert not set(part.matches["transfer_id"]) & test_ids, month
        # ...and nothing is lost: each transfer of the month is trained on, tested on, or
        # quarantined by its key.
        first = pd.Timestamp(f"{month}-01")
        booked = ports.warehouse.transfers(first.date(), (first + pd.offsets.MonthBegin()).date())
        quarantine = datasets.read_quarantine(month)
        quarantined = set(quarantine.loc[quarantine["table"] == "transfers", "key"])
        assert set(booked["transfer_id"]) == trained | (test_ids & set(booked["transfer_id"])) | (
            quarantined
        ), month


def test_the_evaluator_reuses_the_champions_scores_and_scores_it_on_the_newest_month(
    ports, monkeypatch
):
    close(ports, "2025-03")
    (first,) = ports.registry.versions()
    first_verdict = ports.registry.verdict(first.version)
    assert first_verdict is not None and first_verdict.passed
    assert set(first_verdict.newest_month_metrics) == {"rules"}  # no champion to score yet

    scored = []
    scoring = evaluator.predict_slice
    monkeypatch.setattr(
        evaluator,
        "predict_slice",
        lambda predict, part: scored.append(predict) or scoring(predict, part),
    )
    close(ports, "2025-04")
    second = next(r for r in ports.registry.versions() if r.version != first.version)
    verdict = ports.registry.verdict(second.version)
    assert verdict is not None and verdict.champion_version == first.version
    # The frozen test set never changes: the champion's scores are its own verdict's, and only
    # the candidate and the rules are scored on it.
    assert verdict.champion_metrics == exactly(first_verdict.metrics)
    assert len(scored) == 2 and rules_baseline in scored
    # How the champion, trained before the new month, does on it (drift seen by the verdict).
    newest = ports.datasets.read_slice("2025-04")
    champion = evaluator._load(ports, first)
    assert verdict.newest_month_metrics == {
        "rules": exactly(score_rules(newest)),
        "champion": exactly(score(champion.predict, newest)),
    }


def test_the_verdict_rests_on_a_paired_comparison_with_the_champions_stored_outcomes(
    ports, monkeypatch
):
    from cashmatch.service_layer.reporting import load_outcomes
    from cashmatch.service_layer.reporting.store import outcomes_key

    close(ports, "2025-03")
    (first,) = ports.registry.versions()
    stored = load_outcomes(ports.blobs, first.version)
    test_ids = set(ports.datasets.test_set().transfers["transfer_id"].astype(str))
    assert stored is not None and set(stored["transfer_id"]) == test_ids
    # A champion judged before outcomes were kept: it is predicted again, and its outcomes kept.
    ports.blobs.delete(outcomes_key(first.version))
    scored = []
    scoring = evaluator.predict_slice
    monkeypatch.setattr(
        evaluator,
        "predict_slice",
        lambda predict, part: scored.append(predict) or scoring(predict, part),
    )
    close(ports, "2025-04")
    second = next(r for r in ports.registry.versions() if r.version != first.version)
    verdict = ports.registry.verdict(second.version)
    assert verdict is not None and verdict.champion_version == first.version
    assert len(scored) == 3  # candidate, rules, and the champion once more
    again = load_outcomes(ports.blobs, first.version)
    assert again is not None
    pd.testing.assert_frame_equal(again, stored)
    # Trained on one month more than the champion: promoted unless significantly worse, and
    # the verdict says which, with the statistics.
    head = verdict.reasons[0]
    assert head.startswith(("promoted: ", "refused: significantly worse", "refused: pair_f1"))
    assert verdict.passed == head.startswith("promoted: ")
    assert "McNemar p=" in head and "Δ auto_rate@99 " in head and "95% CI [" in head
    assert "trained on newer months than the champion" in verdict.reasons


def exactly(metrics: dict[str, float]):
    return pytest.approx(metrics, rel=0, abs=0, nan_ok=True)


def test_out_of_order_verdict_is_not_rolled_out(ports):
    close(ports, "2025-03")
    (old,) = events_on(ports, "evaluation.passed")  # the first champion's verdict
    close(ports, "2025-04")
    first = old.data["model_version"]
    second = next(r.version for r in ports.registry.versions() if r.version != first)
    # A newer promotion, whatever the 2025-04 verdict was: the second model becomes champion
    # by the registry's compare-and-swap, as its evaluator would have made it.
    _, generation = ports.registry.champion()
    ports.registry.promote(second, generation, by="test", reason="a newer champion")
    deployed_before = ports.registry.deployed()[0]
    announced = len(events_on(ports, "model.deployed"))

    # The first champion's verdict arrives again, late: it must not be rolled out.
    outcome = handle_bytes("deployer", HANDLERS["deployer"], old.to_bytes(), ports)

    assert outcome == f"skipped {first}: the champion is now {second}"
    assert ports.registry.deployed()[0] == deployed_before
    assert len(events_on(ports, "model.deployed")) == announced


def test_two_candidates_evaluated_at_once_one_champion(ports, monkeypatch):
    import cashmatch.service_layer.handlers.evaluator as evaluator
    from cashmatch.domain.model_records import Pointer

    for month in ("2025-03", "2025-04", "2025-05"):
        close(ports, month)
    first, *candidates = sorted(events_on(ports, "model.trained"), key=lambda e: e.time)
    assert len(candidates) == 2
    # Start again from the first model as champion, with both candidates unjudged.
    first_version = first.data["model_version"]
    ports.blobs.put(
        "registry/champion.json", Pointer(version=first_version).model_dump_json().encode()
    )
    for event in candidates:
        ports.blobs.delete(f"registry/verdicts/{event.data['model_version']}.json")
    baseline = ports.registry.verdict(first_version).metrics

    # Each candidate beats the first model but not another candidate; both read the champion
    # before either promotes (the barrier), so the compare-and-swap has to settle it.
    barrier = threading.Barrier(2)
    first_call = threading.local()

    def decide(candidate, champion, gates, **_):
        if not getattr(first_call, "done", False):
            first_call.done = True
            barrier.wait(timeout=60)
        if champion == baseline:
            return True, ["beats the champion"]
        return False, ["does not beat the champion"]

    monkeypatch.setattr(evaluator, "decide", decide)
    errors = []

    def evaluate(event):
        try:
            handle_bytes("evaluator", HANDLERS["evaluator"], event.to_bytes(), ports)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=evaluate, args=(e,)) for e in candidates]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    verdicts = [ports.registry.verdict(e.data["model_version"]) for e in candidates]
    winners = [v for v in verdicts if v.passed]
    losers = [v for v in verdicts if not v.passed]
    assert len(winners) == 1 and len(losers) == 1
    assert ports.registry.champion()[0].version == winners[0].version
    assert any("the champion changed while" in r for r in losers[0].reasons)
    assert losers[0].champion_version == winners[0].version


def _tamper(ports, model_uri: str) -> None:
    key = ports.blobs.key_from_uri(model_uri)
    data = bytearray(ports.blobs.get(key).data)
    data[len(data) // 2] ^= 0xFF
    ports.blobs.put(key, bytes(data))


def test_tampered_artifact_is_refused_and_parked(ports):
    close(ports, "2025-03")
    (trained,) = events_on(ports, "model.trained")
    _tamper(ports, trained.data["model_uri"])
    ports.blobs.delete(f"registry/verdicts/{trained.data['model_version']}.json")

    # The same model.trained delivered again (a redelivery, as the bus would): judged afresh.
    ports.bus.publish(
        "model.trained", trained.to_bytes(), trained.attributes(), message_id="again-" + trained.id
    )
    run_until_idle(ports, HANDLERS, timeout_s=120)

    (parked,) = [d for d in ports.bus.dead_letters() if d.message_id == "again-" + trained.id]
    assert parked.subscription == "evaluator" and parked.attempts == 1  # parked, not retried
    assert "does not match the registered" in parked.detail
    assert ports.registry.verdict(trained.data["model_version"]) is None  # nothing judged


def test_a_tampered_champion_is_not_loaded_by_the_monitor(ports, caplog):
    close(ports, "2025-03")
    champion = ports.registry.get(ports.registry.champion()[0].version)
    _tamper(ports, champion.model_uri)
    with caplog.at_level("WARNING"):
        close(ports, "2025-04")
    # The drift of the data is still reported; the champion's performance is not checked on a
    # model that is not the registered one.
    assert f"champion {champion.version} not checked on 2025-04" in caplog.text
    assert "does not match the registered" in caplog.text


def test_transient_failures_retry_then_dead_letter(make_ports, small_warehouse, monkeypatch):
    ports = make_ports(warehouse=str(small_warehouse), max_attempts=3)
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        raise OSError("warehouse connection reset")

    monkeypatch.setattr(ports.warehouse, "transfers", flaky)
    publish_event(ports.bus, make_event(MonthClosed(month="2025-03"), source="/test"))
    run_until_idle(ports, HANDLERS, timeout_s=60)
    assert len(calls) == 3
    (dead,) = ports.bus.dead_letters()
    assert dead.attempts == 3
    assert "warehouse connection reset" in dead.detail


def test_dispatch_parks_a_wrong_type_without_retrying(ports):
    event = make_event(MonthClosed(month="2025-03"), source="/test")
    ports.bus.publish("dataset.ready", event.to_bytes(), {}, message_id="wrong-topic")
    (delivery,) = ports.bus.pull("trainer")
    outcome = dispatch("trainer", HANDLERS["trainer"], delivery, ports)
    assert outcome.startswith("parked")
    (dead,) = ports.bus.dead_letters()
    assert "trainer takes dataset.ready events" in dead.detail


def test_deployments_and_parked_events_reach_the_notifier(ports):
    sent = []

    class Recorder:
        def notify(self, alert):
            sent.append(alert)
            return True

    ports.notifier = Recorder()
    close(ports, "2025-03")
    assert "deployment" in {a.kind for a in sent}
    publish_event(ports.bus, make_event(MonthClosed(month="2019-01"), source="/test"))
    run_until_idle(ports, HANDLERS, timeout_s=60)
    parked = [a for a in sent if a.kind == "dead_letter"]
    assert parked and any("no transfers booked in 2019-01" in d for d in parked[0].details)


def test_approval_gate_holds_the_roll_out_until_a_person_approves(
    make_ports, small_warehouse, capsys
):
    from cashmatch.entrypoints.cli import status
    from cashmatch.entrypoints.cli.approval import decide

    ports = make_ports(warehouse=str(small_warehouse), approval_required=True)
    close(ports, "2025-03")
    champion = ports.registry.champion()[0].version
    assert champion is not None
    assert ports.registry.deployed()[0].version is None
    waiting = [r for r in ports.bus.log(topic="evaluation.passed") if r.subscription == "deployer"]
    assert "waits for approval" in waiting[0].detail
    status.show(status.gather(ports))
    shown = capsys.readouterr().out
    assert "nothing deployed yet" in shown and f"approve {champion}" in shown

    with pytest.raises(ValueError, match="no passing verdict"):
        decide(ports, "m-unknown", approved=True, reason="x")
    decision, event_id = decide(ports, champion, approved=True, reason="looks good")
    assert decision.approved and event_id
    run_until_idle(ports, HANDLERS, timeout_s=120)
    deployed = ports.registry.deployed()[0]
    assert deployed.version == champion
    assert deployed.history[-1].by == event_id
    status.show(status.gather(ports))
    assert f"deployed {champion} at" in capsys.readouterr().out
    # a decision is final: a later rejection does not undo it, and approving again publishes
    # nothing (no second roll-out, no second "deployed" alert)
    again, _ = decide(ports, champion, approved=False, reason="changed my mind")
    assert again.approved
    published = len(ports.bus.log(limit=1000))
    twice, republished = decide(ports, champion, approved=True, reason="once more")
    assert twice == decision and republished == event_id  # the same event: the bus has it
    assert len(ports.bus.log(limit=1000)) == published


def test_an_approval_whose_republish_was_lost_is_finished_by_approving_again(
    make_ports, small_warehouse
):
    import datetime as dt

    from cashmatch.domain.model_records import Approval
    from cashmatch.entrypoints.cli.approval import decide

    ports = make_ports(warehouse=str(small_warehouse), approval_required=True)
    close(ports, "2025-03")
    champion = ports.registry.champion()[0].version
    # The approval was recorded, then the command died before it republished the verdict.
    ports.registry.record_approval(
        Approval(
            version=champion, approved=True, by="cli:x", reason="ok", at=dt.datetime.now(dt.UTC)
        )
    )
    decision, event_id = decide(ports, champion, approved=True, reason="again")
    assert decision.by == "cli:x" and event_id is not None
    run_until_idle(ports, HANDLERS, timeout_s=120)
    assert ports.registry.deployed()[0].version == champion


def test_a_rejected_version_is_never_rolled_out(make_ports, small_warehouse):
    from cashmatch.entrypoints.cli.approval import decide

    ports = make_ports(warehouse=str(small_warehouse), approval_required=True)
    close(ports, "2025-03")
    champion = ports.registry.champion()[0].version
    decision, event_id = decide(ports, champion, approved=False, reason="audit pending")
    assert not decision.approved and event_id is None
    (event,) = events_on(ports, "evaluation.passed")
    outcome = handle_bytes("deployer", HANDLERS["deployer"], event.to_bytes(), ports)
    assert "rejected by cli:" in outcome and "audit pending" in outcome
    assert ports.registry.deployed()[0].version is None


@pytest.mark.parametrize("month", ["2025-03", "2025-04"])
def test_an_evaluation_that_died_after_promoting_writes_the_verdict_a_calm_one_writes(
    make_ports, small_warehouse, tmp_path, monkeypatch, month
):
    """A process killed between the champion's compare-and-swap and the verdict's write: the
    redelivered evaluation finds its candidate already champion, and must still write the
    verdict (reasons, champion, scores) that the attempt would have written."""
    from cashmatch.domain.evaluation.gates import QualityGates

    # A tie with the champion passes, so the second month's candidate is promoted too.
    gates = QualityGates(min_gain=0.0)
    calm = make_ports(warehouse=str(small_warehouse), workspace=tmp_path / "calm", gates=gates)
    crashed = make_ports(
        warehouse=str(small_warehouse), workspace=tmp_path / "crashed", gates=gates
    )
    months = ["2025-03", "2025-04"][: ["2025-03", "2025-04"].index(month) + 1]
    for ports in (calm, crashed):
        for m in months[:-1]:
            close(ports, m)
    event = make_event(MonthClosed(month=month), source="/test")  # the same id for both
    publish_event(calm.bus, event)
    run_until_idle(calm, HANDLERS, timeout_s=300)

    class Killed(BaseException):
        """Stands for SIGKILL: nothing after it runs, and dispatch does not catch it."""

    def die(verdict):
        raise Killed

    publish_event(crashed.bus, event)
    for service in ("collector", "trainer"):
        run_until_idle(crashed, {service: HANDLERS[service]}, timeout_s=120)
    (trained,) = [e for e in events_on(crashed, "model.trained") if e.data["month"] == month]
    with monkeypatch.context() as patch:
        patch.setattr(crashed.registry, "record_verdict", die)
        with pytest.raises(Killed):
            handle_bytes("evaluator", HANDLERS["evaluator"], trained.to_bytes(), crashed)
    version = trained.data["model_version"]
    assert crashed.registry.champion()[0].version == version, "it died after promoting"
    handle_bytes("evaluator", HANDLERS["evaluator"], trained.to_bytes(), crashed)

    ignored = {"decided_at", "report_uri"}
    assert crashed.registry.verdict(version).model_dump(exclude=ignored) == calm.registry.verdict(
        version
    ).model_dump(exclude=ignored)
