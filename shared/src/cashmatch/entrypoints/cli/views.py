"""What the commands show, as plain data: the objects `--json` prints and the tables are made of.

One function per kind of object, so every command that shows a delivery or a model shows it the
same way. The shapes are stable: fields may be added, none is renamed or removed. Ids are whole
(a table shows their first 8 characters); times are ISO 8601; a missing number is null.

delivery (`events --json`, `dead-letters --json`, the "events" of `status --json`):
    message_id, topic, month (YYYY-MM or null), subscription (the service, null for a message no
    service takes), state (published | pending | leased | done | retrying | dead), attempts,
    detail (what the service made of it, whole), published_at, updated_at, attributes

model (`models --json`, the "models" of `status --json`):
    version, dataset_version, training_months (list of YYYY-MM), artifact_digest,
    verdict (passed | rejected | pending), why (its first reason), reasons (all of them),
    auto_rate@99, exact_set_accuracy, rules_auto_rate@99 (numbers on the frozen test set),
    report (URI of the evaluation report), champion, deployed (booleans), endpoint (where it
    serves, when deployed)

quarantined row (`quarantine --json`): month, table, key, reason
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from cashmatch.ports import BusRecord
from cashmatch.service_layer.registry import ModelRegistry


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


def models(registry: ModelRegistry) -> list[dict[str, Any]]:
    """Every model version, oldest first, with its verdict and whether it is champion/deployed."""
    champion, _ = registry.champion()
    deployed, _ = registry.deployed()
    shown = []
    for record in registry.versions():
        verdict = registry.verdict(record.version)
        metrics = verdict.metrics if verdict else {}
        rules = verdict.baseline_metrics if verdict else {}
        shown.append(
            {
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
                "champion": record.version == champion.version,
                "deployed": record.version == deployed.version,
                "endpoint": deployed.endpoint if record.version == deployed.version else None,
            }
        )
    return shown


def months_span(months: list[str]) -> str:
    """A list of months for a table cell: first..last."""
    return f"{months[0]}..{months[-1]}" if months else "–"


def role(model: dict[str, Any]) -> str:
    """champion, deployed, both or neither, for a table cell."""
    return " ".join(r for r in ("champion", "deployed") if model[r])


def quarantined(rows: pd.DataFrame, month: str) -> list[dict[str, Any]]:
    """The rows the collector set aside for `month`, by table and key, with the reason."""
    return [
        {"month": month, "table": str(t), "key": str(k), "reason": str(r)}
        for t, k, r in rows[["table", "key", "reason"]].itertuples(index=False)
    ]
