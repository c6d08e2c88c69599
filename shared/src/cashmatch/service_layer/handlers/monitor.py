"""Monitor: dataset.ready → the new month compared with the training reference → an HTML drift
report in the blob store → drift.detected when something moved; and the realized performance of
the versions that served the month, now that its labels are final → performance.breached when
the promise did not hold (service_layer/performance.py).

Runs beside the trainer on the same event. The champion it checks is the newest one trained
before the month (from the champion pointer's history), so the outcome does not depend on
whether the evaluator has already promoted this month's candidate.
"""

from __future__ import annotations

import json
import logging

from cashmatch.domain.dataset.slices import Slice
from cashmatch.domain.errors import PermanentError
from cashmatch.domain.evaluation.promise import Realized
from cashmatch.domain.evaluation.scoring import batches, score
from cashmatch.domain.events import (
    DatasetReady,
    DriftDetected,
    Envelope,
    PerformanceBreached,
    derived_id,
)
from cashmatch.domain.matching.batches import MonthBatch
from cashmatch.domain.monitoring import (
    DriftConfig,
    DriftReport,
    PerformanceDrift,
    compute_drift,
    performance_drift,
)
from cashmatch.ports import BlobNotFound
from cashmatch.service_layer import performance, performance_records
from cashmatch.service_layer.batch_matching import chunked
from cashmatch.service_layer.context import Ports
from cashmatch.service_layer.model_store import ArtifactDigestMismatch, load_verified
from cashmatch.service_layer.publishing import publish_answer
from cashmatch.service_layer.reporting.drift import render_drift_report
from cashmatch.service_layer.reporting.store import DRIFT, drift_report_key, drift_summary_key

log = logging.getLogger(__name__)
SOURCE = "/services/monitor"
PREFIX = DRIFT
report_key = drift_report_key
summary_key = drift_summary_key


def _months(ports: Ports, payload: DatasetReady) -> tuple[list[MonthBatch], MonthBatch | None]:
    manifest = ports.datasets.read_manifest(payload.dataset_uri)
    try:
        data = ports.datasets.training_data(manifest)  # digests verified against the manifest
    except ValueError as exc:
        raise PermanentError(str(exc)) from None
    by_month = {b.month: b for b in batches(data)}
    reference = [by_month[m] for m in sorted(by_month) if m < payload.month]
    return reference, by_month.get(payload.month)


def champion_before(ports: Ports, month: str) -> str | None:
    """The newest champion trained only on months before `month`, or None."""
    pointer, _ = ports.registry.champion()
    versions = [change.version for change in reversed(pointer.history)]
    if pointer.version and pointer.version not in versions:
        versions.insert(0, pointer.version)
    for version in versions:
        try:
            record = ports.registry.get(version)
        except KeyError:
            continue
        if record.training_months and max(record.training_months) < month:
            return version
    return None


def _performance(
    ports: Ports, month: str, version: str | None, current: MonthBatch, config: DriftConfig
) -> PerformanceDrift | None:
    if version is None:
        return None
    verdict = ports.registry.verdict(version)
    if verdict is None:
        return None
    try:
        model = load_verified(ports.blobs, ports.registry.get(version))
    except (ArtifactDigestMismatch, ValueError) as exc:
        log.warning("champion %s not checked on %s: %s", version, month, exc)
        return None
    part = Slice(
        current.transfers.assign(month=month),
        current.invoices.assign(month=month),
        current.matches.assign(month=month),
    )
    return performance_drift(
        verdict.metrics,
        score(chunked(model, ports), part),
        max_drop=config.max_auto_rate_drop,
        champion_version=version,
    )


def _stored_summary(ports: Ports, payload: DatasetReady, champion: str | None) -> dict | None:
    """The month's stored result when it was computed from the same dataset against the same
    champion: a redelivery or a republish then changes nothing, a new dataset or champion does."""
    try:
        summary = json.loads(ports.blobs.get(summary_key(payload.month)).data)
    except BlobNotFound:
        return None
    same_data = summary.get("dataset_version") == payload.dataset_version
    same_champion = summary.get("checked_against") == champion
    return summary if same_data and same_champion else None


def monitor(event: Envelope, ports: Ports) -> str:
    """Handle dataset.ready; a redelivery or republish re-announces the stored result instead of
    recomputing it (see `_stored_summary`)."""
    payload = event.payload()
    assert isinstance(payload, DatasetReady)
    # The realized figures first: the month's drift report then shows its own point on the
    # promise chart.
    realized = _realized(ports, event, payload)
    return f"{_drift(ports, event, payload)}; {realized}"


def _realized(ports: Ports, event: Envelope, payload: DatasetReady) -> str:
    """Score every version that served the month; a breach by the one serving at the close
    is announced once per (month, version), whatever the deliveries or republishes."""
    month = payload.month
    records: list[Realized] = []
    for version in performance.served_versions(ports, month, event.time):
        try:
            records.append(performance.realized(ports, month, version, event.time))
        except (ArtifactDigestMismatch, ValueError) as exc:
            log.warning("realized performance of %s on %s not computed: %s", version, month, exc)
    if not records:
        return f"no version served {month}: no realized performance"
    served = records[-1]
    if served.state == "undefined":
        return f"{served.version} settled nothing of {month} on its own: precision undefined"
    figures = (
        f"{served.version} auto {served.auto_share:.1%} of {month}, "
        f"{served.auto_precision:.2%} right (≥ {served.auto_precision_lower:.2%})"
    )
    if served.state != "breached":
        return f"{figures}: {served.state} ({served.target:.0%})"
    breach = PerformanceBreached(
        month=month,
        model_version=served.version,
        auto=served.auto,
        auto_share=served.auto_share,
        auto_precision=served.auto_precision,
        auto_precision_lower=served.auto_precision_lower,
        target=served.target,
        threshold=served.threshold,
        threshold_source=served.threshold_source,
        holding_threshold=served.holding_threshold,
        report_uri=ports.blobs.uri(performance_records.record_key(month, served.version)),
        caused_by=event.id,
    )
    # The id names the (month, version), not the delivery: a republished close breaches nothing new.
    event_id = derived_id(f"breach/{month}/{served.version}", PerformanceBreached.topic)
    publish_answer(ports, event, breach, SOURCE, event_id=event_id)
    return f"{figures}: BREACHES {served.target:.0%}"


def _drift(ports: Ports, event: Envelope, payload: DatasetReady) -> str:
    month = payload.month
    champion = champion_before(ports, month)  # the one the month is checked against
    summary = _stored_summary(ports, payload, champion)
    if summary is None:
        reference, current = _months(ports, payload)
        if current is None or current.transfers.empty:
            return f"no transfers of {month} in the dataset: nothing to compare"
        if not reference:
            return f"no month before {month} in the dataset: nothing to compare with"
        config = ports.settings.drift
        report = compute_drift(
            reference,
            current,
            config,
            performance=_performance(ports, month, champion, current, config),
        )
        summary = _store(ports, report, payload, champion, event.id)
    drifted: list[str] = summary["drifted_columns"]
    if drifted:
        answer = DriftDetected(
            month=month,
            dataset_version=payload.dataset_version,
            drifted_columns=drifted,
            report_uri=summary["report_uri"],
            champion_version=summary["champion_version"],
            caused_by=event.id,
        )
        publish_answer(ports, event, answer, SOURCE)
        return f"drift in {month}: {', '.join(drifted)}"
    return f"no drift in {month}"


def _store(
    ports: Ports, report: DriftReport, payload: DatasetReady, champion: str | None, cause_id: str
) -> dict:
    """The report first, then its summary: a summary never names a missing report."""
    key = report_key(report.month)
    promise = performance_records.summary_rows(ports)
    ports.blobs.put(key, render_drift_report(report, promise, ports.settings.guardrail_target))
    summary = {
        **report.to_dict(),
        "report_uri": ports.blobs.uri(key),
        "dataset_version": payload.dataset_version,
        "champion_version": report.performance.champion_version if report.performance else None,
        # the champion trained before the month, scored or not (no verdict, an unloadable file)
        "checked_against": champion,
        "caused_by": cause_id,
    }
    ports.blobs.put(summary_key(report.month), json.dumps(summary, indent=2).encode())
    log.info("drift of %s: %s", report.month, summary["drifted_columns"] or "none")
    return summary
