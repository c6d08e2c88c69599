"""Evaluator: model.trained → candidate and champion scored on the frozen test set → promote
by compare-and-swap or reject → evaluation.passed / evaluation.rejected."""

from __future__ import annotations

import logging
from typing import NamedTuple

import pandas as pd

from cashmatch.domain.dataset.slices import Slice
from cashmatch.domain.errors import PermanentError
from cashmatch.domain.evaluation.curves import precision_coverage_curve
from cashmatch.domain.evaluation.gates import decide, newer_months
from cashmatch.domain.evaluation.paired import compare, transfer_outcomes
from cashmatch.domain.evaluation.scoring import predict_slice, score, score_rules
from cashmatch.domain.events import (
    Envelope,
    EvaluationPassed,
    EvaluationRejected,
    ModelTrained,
    derived_id,
    make_event,
)
from cashmatch.domain.matching import TrainedMatcher, rules_baseline
from cashmatch.domain.matching import evaluate as evaluate_predictions
from cashmatch.domain.model_records import ModelRecord, Verdict
from cashmatch.ports import PreconditionFailed
from cashmatch.service_layer import performance_records
from cashmatch.service_layer.batch_matching import chunked
from cashmatch.service_layer.context import Ports
from cashmatch.service_layer.model_store import ArtifactDigestMismatch, load_verified
from cashmatch.service_layer.publishing import already_published, publish_event
from cashmatch.service_layer.reporting import (
    champion_history,
    load_curve,
    load_outcomes,
    render_evaluation_report,
    save_curve,
    save_outcomes,
    save_report,
)

log = logging.getLogger(__name__)
SOURCE = "/services/evaluator"
MAX_RACES = 5


def _load(ports: Ports, record: ModelRecord) -> TrainedMatcher:
    try:
        return load_verified(ports.blobs, record)
    except (ArtifactDigestMismatch, ValueError) as exc:
        raise PermanentError(str(exc)) from None


def evaluate(event: Envelope, ports: Ports) -> str:
    """Handle model.trained; a version is judged once, later deliveries re-announce its verdict."""
    payload = event.payload()
    assert isinstance(payload, ModelTrained)
    registry = ports.registry
    existing = registry.verdict(payload.model_version)
    verdict = _judge(ports, payload, event.id) if existing is None else existing
    _announce(ports, payload, verdict)
    state = "passed" if verdict.passed else "rejected"
    if existing is not None:
        return f"{payload.model_version} already judged: {state}"
    return f"{payload.model_version} {state}: {verdict.reasons[0]}"


class _Scored(NamedTuple):
    """A model on the frozen test set: its metrics, curves by role, per-transfer outcomes."""

    metrics: dict[str, float]
    curves: dict[str, pd.DataFrame]
    outcomes: pd.DataFrame


class _Decision(NamedTuple):
    """The outcome of comparing the candidate with the champion (and of promoting it)."""

    passed: bool
    reasons: list[str]
    champion_version: str | None
    champion_metrics: dict[str, float] | None


def _judge(ports: Ports, payload: ModelTrained, cause_id: str) -> Verdict:
    record = _registered(ports, payload)
    candidate = _load(ports, record)
    test = ports.datasets.test_set()
    test_manifest = ports.datasets.test_manifest()
    test_version = test_manifest["version"] if test_manifest else None
    candidate_predictions = predict_slice(chunked(candidate, ports), test)
    rules_predictions = predict_slice(rules_baseline, test)
    metrics = evaluate_predictions(candidate_predictions, test.transfers, test.matches)
    baseline = evaluate_predictions(rules_predictions, test.transfers, test.matches)
    curves = {
        "candidate": precision_coverage_curve(candidate_predictions, test.transfers, test.matches),
        "rules": precision_coverage_curve(rules_predictions, test.transfers, test.matches),
    }
    outcomes = transfer_outcomes(candidate_predictions, test.transfers, test.matches)
    save_curve(ports.blobs, record.version, curves["candidate"])
    save_outcomes(ports.blobs, record.version, outcomes)
    scored = _Scored(metrics, curves, outcomes)
    decision = _decide_and_promote(ports, record, test, test_version, scored, cause_id)
    newest = _newest_month_metrics(ports, payload.month, decision.champion_version)
    verdict_topic = EvaluationPassed.topic if decision.passed else EvaluationRejected.topic
    decided_at = ports.clock()
    verdict = Verdict(
        version=record.version,
        passed=decision.passed,
        reasons=decision.reasons,
        metrics=metrics,
        baseline_metrics=baseline,
        champion_version=decision.champion_version,
        champion_metrics=decision.champion_metrics,
        newest_month_metrics=newest,
        decided_at=decided_at,
        event_id=derived_id(cause_id, verdict_topic),
        caused_by=cause_id,
        test_set_version=test_version,
    )
    report_uri = _write_report(ports, payload.month, verdict, curves)
    verdict = verdict.model_copy(update={"report_uri": report_uri})
    return ports.registry.record_verdict(verdict)


def _registered(ports: Ports, payload: ModelTrained) -> ModelRecord:
    """The registry's record of the trained version, which must hold the event's artifact."""
    try:
        record = ports.registry.get(payload.model_version)
    except KeyError as exc:
        raise PermanentError(str(exc)) from None
    if record.artifact_digest != payload.artifact_digest:
        raise PermanentError(
            f"event digest {payload.artifact_digest[:12]}… differs from the registry's "
            f"{record.artifact_digest[:12]}… for {record.version}"
        )
    return record


def _decide_and_promote(
    ports: Ports,
    record: ModelRecord,
    test: Slice,
    test_version: str | None,
    candidate: _Scored,
    cause_id: str,
) -> _Decision:
    """Gate the candidate against the current champion and promote it by compare-and-swap,
    comparing again when the champion changes meanwhile. Adds the champion's curve to the
    candidate's `curves`.
    """
    registry = ports.registry
    champion_version: str | None = None
    champion_metrics: dict[str, float] | None = None
    passed, reasons = False, ["not judged"]
    notes: list[str] = []
    for _ in range(MAX_RACES):
        pointer, generation = registry.champion()
        promoted_before = pointer.version == record.version
        # An earlier attempt promoted it and died before writing the verdict: judge it again
        # against the champion it replaced, so the verdict is the one that attempt would have
        # written (the chaos run found "promoted by an earlier attempt" as its only reason).
        champion_version = (
            (pointer.history[-1].previous if pointer.history else None)
            if promoted_before
            else pointer.version
        )
        champion_metrics = None
        if champion_version is None:
            passed, reasons = decide(candidate.metrics, None, ports.settings.gates)
        else:
            champion = _champion_scores(ports, champion_version, test, test_version, candidate)
            champion_metrics = champion.metrics
            candidate.curves["champion"] = champion.curves["champion"]
            passed, reasons = _against(ports, record, champion_version, candidate, champion)
        if promoted_before:
            if not passed:  # the gates changed since: it is the champion all the same
                passed, reasons = True, ["promoted by an earlier attempt of this evaluation"]
            break
        if not passed:
            break
        try:
            registry.promote(record.version, generation, by=cause_id, reason=reasons[0])
            break
        except PreconditionFailed:
            notes.append(
                f"the champion changed while {record.version} was evaluated; compared again"
            )
    else:
        passed, reasons = False, [f"lost {MAX_RACES} promotion races in a row; giving up"]
    return _Decision(passed, [*reasons, *notes], champion_version, champion_metrics)


def _against(
    ports: Ports, record: ModelRecord, champion_version: str, candidate: _Scored, champion: _Scored
) -> tuple[bool, list[str]]:
    """The gates' decision on the paired comparison of candidate and champion, transfer by
    transfer, and on whether the candidate was trained on newer months."""
    gates = ports.settings.gates
    comparison = compare(
        candidate.outcomes,
        champion.outcomes,
        gates.compared_metrics(),
        alpha=gates.alpha,
        resamples=gates.bootstrap_resamples,
        seed=gates.bootstrap_seed,
    )
    champion_record = ports.registry.get(champion_version)
    fresher = newer_months(record.training_months, champion_record.training_months)
    return decide(
        candidate.metrics, champion.metrics, gates, comparison=comparison, fresher=fresher
    )


def _champion_scores(
    ports: Ports, version: str, test: Slice, test_version: str | None, wanted: _Scored
) -> _Scored:
    """The champion's metrics, curve (as `curves["champion"]`) and per-transfer outcomes on the
    test set: kept from its own evaluation when they still apply, else scored again."""
    champion_metrics = _champion_metrics(ports, version, test_version, wanted.metrics)
    champion_curve = load_curve(ports.blobs, version)
    outcomes = load_outcomes(ports.blobs, version)
    if outcomes is not None and set(outcomes["transfer_id"]) != set(wanted.outcomes["transfer_id"]):
        outcomes = None
    if champion_metrics is not None and champion_curve is not None and outcomes is not None:
        return _Scored(champion_metrics, {"champion": champion_curve}, outcomes)
    champion = _load(ports, ports.registry.get(version))
    predictions = predict_slice(chunked(champion, ports), test)
    outcomes = transfer_outcomes(predictions, test.transfers, test.matches)
    # A champion judged before outcomes were kept: keep them now, for the next candidates.
    save_outcomes(ports.blobs, version, outcomes)
    return _Scored(
        evaluate_predictions(predictions, test.transfers, test.matches),
        {"champion": precision_coverage_curve(predictions, test.transfers, test.matches)},
        outcomes,
    )


def _write_report(
    ports: Ports, month: str, verdict: Verdict, curves: dict[str, pd.DataFrame]
) -> str:
    """The HTML page of this verdict, with the champions' history up to this decision."""
    history = champion_history(ports.registry)
    now_champion = verdict.version if verdict.passed else verdict.champion_version
    now_metrics = verdict.metrics if verdict.passed else verdict.champion_metrics
    if now_champion is not None and now_metrics is not None:
        history = sorted(
            [r for r in history if r[0] != month] + [(month, now_champion, now_metrics)]
        )
    page = render_evaluation_report(
        verdict,
        curves=curves,
        champion_history=history,
        month=month,
        promise=performance_records.summary_rows(ports),
    )
    return save_report(ports.blobs, verdict.version, page)


def _champion_metrics(
    ports: Ports, version: str, test_version: str | None, wanted: dict[str, float]
) -> dict[str, float] | None:
    """The champion's own verdict scores, when they are on this frozen test set with the same
    metrics: the test set never changes, so scoring the champion again would repeat them."""
    verdict = ports.registry.verdict(version)
    if verdict is None or test_version is None or verdict.test_set_version != test_version:
        return None
    if set(verdict.metrics) != set(wanted):
        return None
    return verdict.metrics


def _newest_month_metrics(
    ports: Ports, month: str, champion_version: str | None
) -> dict[str, dict[str, float]]:
    """How the champion (trained before this month) and the rules do on the newest month."""
    if month not in ports.datasets.slice_months():
        return {}
    newest = ports.datasets.read_slice(month)
    if newest.transfers.empty:
        return {}
    result = {"rules": score_rules(newest)}
    if champion_version is not None:
        champion = _load(ports, ports.registry.get(champion_version))
        result["champion"] = score(chunked(champion, ports), newest)
    return result


def _announce(ports: Ports, payload: ModelTrained, verdict: Verdict) -> None:
    if already_published(ports.bus, verdict.event_id):
        return
    model = EvaluationPassed if verdict.passed else EvaluationRejected
    answer = model(
        month=payload.month,
        model_version=verdict.version,
        dataset_version=payload.dataset_version,
        **verdict.scores(),
    )
    publish_event(
        ports.bus, make_event(answer, source=SOURCE, event_id=verdict.event_id, now=ports.clock())
    )
