"""What there is to see of the chain, as plain data: the months, the model versions, the
deliveries. `cashmatch status`, `models`, `events` and the web console (`cashmatch ui`) all read
through these functions, so a page and a command never disagree.

The shapes are stable: fields may be added, none is renamed or removed. Ids are whole; times are
ISO 8601; a missing number is None.

delivery: message_id, topic, month (YYYY-MM or None), subscription (the service, None for a
    message no service takes), state (published | pending | leased | done | retrying | dead),
    attempts, detail (what the service made of it, whole), published_at, updated_at, attributes

model: version, dataset_version, training_months (list of YYYY-MM), artifact_digest,
    verdict (passed | rejected | pending), why (its first reason), reasons (all of them),
    auto_rate@99, exact_set_accuracy, rules_auto_rate@99 (numbers on the frozen test set),
    report (URI of the evaluation report), champion, deployed (booleans), endpoint (where it
    serves, when deployed)

month (timeline): month, train_transfers, quarantined, dataset_version, training_months,
    candidates (versions trained up to this month, oldest first), candidate (the newest of
    them), verdict (passed | rejected | pending | None), verdict_words, approval, champion
    (after this month's verdict), deployed (after this month's roll-out), drift (summary or
    None), auto_share, realized_precision (None until measured: see `realized`)
"""

from __future__ import annotations

import json
import re
from typing import Any

from cashmatch.domain.model_records import ModelRecord, PointerChange, Verdict
from cashmatch.ports import BlobNotFound, BlobStore, BusRecord
from cashmatch.service_layer import performance_records
from cashmatch.service_layer.context import Ports
from cashmatch.service_layer.registry import ModelRegistry
from cashmatch.service_layer.reporting.store import (
    drift_report_key,
    drift_summary_key,
    report_key,
)


def delivery(record: BusRecord) -> dict[str, Any]:
    """A message and what one subscriber made of it."""
    return {
        "message_id": record.message_id,
        "topic": record.topic,
        "month": record.attributes.get("month"),
        "subscription": record.subscription,
        "state": record.state,
        "attempts": record.attempts,
        "detail": record.detail,
        "published_at": record.published_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "attributes": dict(record.attributes),
    }


def _model(
    record: ModelRecord, verdict: Verdict | None, champion: str | None, deployed: Any
) -> dict[str, Any]:
    metrics = verdict.metrics if verdict else {}
    rules = verdict.baseline_metrics if verdict else {}
    return {
        "version": record.version,
        "dataset_version": record.dataset_version,
        "training_months": list(record.training_months),
        "artifact_digest": record.artifact_digest,
        "verdict": ("passed" if verdict.passed else "rejected") if verdict else "pending",
        "why": verdict.reasons[0] if verdict and verdict.reasons else None,
        "reasons": list(verdict.reasons) if verdict else [],
        "auto_rate@99": metrics.get("auto_rate@99"),
        "exact_set_accuracy": metrics.get("exact_set_accuracy"),
        "rules_auto_rate@99": rules.get("auto_rate@99"),
        "report": verdict.report_uri if verdict else None,
        "champion": record.version == champion,
        "deployed": record.version == deployed.version,
        "endpoint": deployed.endpoint if record.version == deployed.version else None,
    }


def models(registry: ModelRegistry) -> list[dict[str, Any]]:
    """Every model version, oldest first, with its verdict and whether it is champion/deployed."""
    champion, _ = registry.champion()
    deployed, _ = registry.deployed()
    return [
        _model(record, registry.verdict(record.version), champion.version, deployed)
        for record in registry.versions()
    ]


def approval_state(ports: Ports, version: str) -> str | None:
    """approved / rejected by a person, "waiting" while approval is required and not given."""
    decision = ports.registry.approval(version)
    if decision is not None:
        return "approved" if decision.approved else "rejected"
    return "waiting" if ports.settings.approval_required else None


def _manifest(blobs: BlobStore, month: str) -> dict[str, Any]:
    try:
        return json.loads(blobs.get(f"datasets/manifests/{month}.json").data)
    except BlobNotFound:
        return {}


def _months(ports: Ports) -> list[dict[str, Any]]:
    datasets = ports.datasets
    months = []
    for month in datasets.slice_months():
        manifest = _manifest(ports.blobs, month)
        months.append(
            {
                "month": month,
                "train_transfers": datasets.slice_rows(month),
                "quarantined": len(datasets.read_quarantine(month)),
                "dataset_version": manifest.get("version"),
                "training_months": manifest.get("training_months", []),
            }
        )
    return months


def status(ports: Ports, *, events: int = 10) -> dict[str, Any]:
    """Months, datasets, models with verdicts, champion lineage, deployment, recent events
    (what `cashmatch status --json` prints)."""
    registry = ports.registry
    champion, _ = registry.champion()
    deployed, _ = registry.deployed()
    lineage = None
    if champion.version is not None:
        record = registry.get(champion.version)
        lineage = {
            "version": record.version,
            "dataset_version": record.dataset_version,
            "dataset_uri": record.dataset_uri,
            "training_months": record.training_months,
            "trained_because_of": record.caused_by,
            "approval": approval_state(ports, record.version),
        }
    test = ports.datasets.test_manifest()
    return {
        "months": _months(ports),
        "test_set": None
        if test is None
        else {"version": test["version"], "months": test["months"], "rows": test["rows"]},
        "models": models(registry),
        "champion": lineage,
        "champion_history": [h.model_dump(mode="json") for h in champion.history],
        "deployed": {
            "version": deployed.version,
            "endpoint": deployed.endpoint,
            "history": [h.model_dump(mode="json") for h in deployed.history],
        },
        "promise": {
            "target": ports.settings.guardrail_target,
            "months": performance_records.summary_rows(ports),
            "override": _override(ports),
        },
        "events": [delivery(r) for r in ports.bus.log(limit=events)][:events],
        "dead_letters": len(ports.bus.dead_letters()),
    }


def _override(ports: Ports) -> dict[str, Any] | None:
    override = ports.registry.guardrail()[0].override
    if override is None:
        return None
    return {**override.model_dump(mode="json"), "source": override.describe()}


# ---------------------------------------------------------------------------------------------
# The console's month timeline and model pages


def realized(ports: Ports, month: str) -> dict[str, Any]:
    """How the version serving at `month`'s close did on it, once its labels were final: the
    share of transfers it settled on its own and how many of those were exactly right
    (`service_layer/performance.py` writes the records at each close). None before the close."""
    records = performance_records.months_realized(ports).get(month)
    record = records[-1] if records else None
    if record is None:
        return {"auto_share": None, "realized_precision": None, "promise": None}
    return {
        "auto_share": record.auto_share,
        "realized_precision": record.auto_precision,
        "promise": record.state,
    }


def drift_summary(blobs: BlobStore, month: str) -> dict[str, Any] | None:
    """The monitor's summary of a month's drift (drifted columns, report URI), or None."""
    try:
        return json.loads(blobs.get(drift_summary_key(month)).data)
    except BlobNotFound:
        return None


def verdict_words(verdict: Verdict | None) -> str:
    """The verdict in words: passed or rejected and the first reason, or not judged yet."""
    if verdict is None:
        return "not judged yet"
    head = "passed: new champion" if verdict.passed else "rejected"
    return f"{head}: {verdict.reasons[0]}" if verdict.reasons else head


def _after_month(
    changes: list[PointerChange], trained_up_to: dict[str, str], month: str
) -> str | None:
    """The pointer's version once the versions trained up to `month` had moved it: the last
    change to a version whose newest training month is `month` or earlier."""
    chosen = None
    for change in changes:
        if trained_up_to.get(change.version, "9999-99") <= month:
            chosen = change.version
    return chosen


def timeline(ports: Ports) -> dict[str, Any]:
    """One row per collected month (oldest first) and where the pointers stand now."""
    registry = ports.registry
    champion, _ = registry.champion()
    deployed, _ = registry.deployed()
    records = registry.versions()
    verdicts = {r.version: registry.verdict(r.version) for r in records}
    trained_up_to = {r.version: max(r.training_months) for r in records if r.training_months}
    by_month: dict[str, list[str]] = {}
    for record in records:
        if record.training_months:
            by_month.setdefault(max(record.training_months), []).append(record.version)
    rows = []
    for month in _months(ports):
        candidates = by_month.get(month["month"], [])
        candidate = candidates[-1] if candidates else None
        verdict = verdicts.get(candidate) if candidate else None
        drift = drift_summary(ports.blobs, month["month"])
        rows.append(
            {
                **month,
                "candidates": candidates,
                "candidate": candidate,
                "verdict": None
                if candidate is None
                else ("pending" if verdict is None else "passed" if verdict.passed else "rejected"),
                "verdict_words": verdict_words(verdict) if candidate else None,
                "approval": approval_state(ports, candidate)
                if candidate is not None and verdict is not None and verdict.passed
                else None,
                "champion": _after_month(champion.history, trained_up_to, month["month"]),
                "deployed": _after_month(deployed.history, trained_up_to, month["month"]),
                "drift": None
                if drift is None
                else {
                    "drifted": bool(drift.get("drifted")),
                    "drifted_columns": list(drift.get("drifted_columns", [])),
                },
                **realized(ports, month["month"]),
            }
        )
    return {
        "months": rows,
        "champion": champion.version,
        "deployed": deployed.version,
        "endpoint": deployed.endpoint,
        "versions": len(records),
        "dead_letters": len(ports.bus.dead_letters()),
        "approval_required": ports.settings.approval_required,
    }


_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.DOTALL | re.IGNORECASE)


def report_body(blobs: BlobStore, key: str) -> str | None:
    """The inside of a stored HTML report's <body> (the reporting package's own markup), to be
    shown inside another page; None when there is no such report."""
    try:
        text = blobs.get(key).data.decode()
    except BlobNotFound:
        return None
    found = _BODY.search(text)
    return found.group(1) if found else text


def version_detail(ports: Ports, version: str) -> dict[str, Any]:
    """Everything about one model version; KeyError naming it if unknown."""
    registry = ports.registry
    record = registry.get(version)
    verdict = registry.verdict(version)
    champion, _ = registry.champion()
    deployed, _ = registry.deployed()
    approval = registry.approval(version)
    newest = max(record.training_months) if record.training_months else None

    def touching(changes: list[PointerChange]) -> list[dict[str, Any]]:
        return [c.model_dump(mode="json") for c in changes if version in (c.version, c.previous)]

    return {
        "model": _model(record, verdict, champion.version, deployed),
        "record": record.model_dump(mode="json"),
        "verdict": None if verdict is None else verdict.model_dump(mode="json"),
        "verdict_words": verdict_words(verdict),
        "metrics_by_role": None if verdict is None else verdict.metrics_by_role(),
        "newest_month_metrics": None if verdict is None else verdict.newest_month_metrics,
        "champion_now": champion.version,
        "approval": None if approval is None else approval.model_dump(mode="json"),
        "approval_state": approval_state(ports, version),
        "can_decide": verdict is not None and verdict.passed and approval is None,
        "newest_month": newest,
        "champion_history": touching(champion.history),
        "deployed_history": touching(deployed.history),
        "evaluation_report": report_body(ports.blobs, report_key(version)),
        "drift_report": report_body(ports.blobs, drift_report_key(newest)) if newest else None,
    }


def month_detail(ports: Ports, month: str) -> dict[str, Any]:
    """One month: its row of the timeline, its quarantined rows and its drift report."""
    rows = {m["month"]: m for m in timeline(ports)["months"]}
    if month not in rows:
        raise KeyError(f"no collected month {month!r}")
    quarantine = ports.datasets.read_quarantine(month)
    return {
        "row": rows[month],
        "quarantine": [
            {"table": str(t), "key": str(k), "reason": str(r)}
            for t, k, r in quarantine[["table", "key", "reason"]].itertuples(index=False)
        ]
        if len(quarantine)
        else [],
        "drift_report": report_body(ports.blobs, drift_report_key(month)),
        "events": [
            delivery(r) for r in ports.bus.log(limit=100_000) if r.attributes.get("month") == month
        ],
    }
