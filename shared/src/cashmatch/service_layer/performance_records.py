"""The realized-performance records in the blob store, read without the model: the guardrail
(in the deployer's image, no scikit-learn), `status` and the console read them here; the monitor
writes them (`performance.py`)."""

from __future__ import annotations

import math
from typing import Any

from cashmatch.domain.evaluation.promise import Realized
from cashmatch.ports import BlobNotFound
from cashmatch.service_layer.context import Ports

PREFIX = "performance"
# Above every calibrated confidence (they lie in [0, 1]): nothing is settled without a person.
NOTHING_AUTO = math.nextafter(1.0, 2.0)


def record_key(month: str, version: str) -> str:
    """Blob key of one version's realized performance on one month."""
    return f"{PREFIX}/{month}/{version}.json"


def stored(ports: Ports, month: str, version: str) -> Realized | None:
    """The stored record of (month, version), if any."""
    try:
        return Realized.model_validate_json(ports.blobs.get(record_key(month, version)).data)
    except BlobNotFound:
        return None


def months_realized(ports: Ports) -> dict[str, list[Realized]]:
    """Every stored record, by month (oldest first), each month's versions oldest first."""
    result: dict[str, list[Realized]] = {}
    for key in ports.blobs.list(f"{PREFIX}/"):
        if not key.endswith(".json"):
            continue
        record = Realized.model_validate_json(ports.blobs.get(key).data)
        result.setdefault(record.month, []).append(record)
    return dict(sorted(result.items()))


def summary_rows(ports: Ports) -> list[dict[str, Any]]:
    """One JSON-ready row per (closed month, version that served it), oldest first."""
    rows = []
    for month, records in months_realized(ports).items():
        for r in records:
            rows.append(
                {
                    "month": month,
                    "version": r.version,
                    "transfers": r.transfers,
                    "auto": r.auto,
                    "auto_share": r.auto_share,
                    "auto_precision": r.auto_precision,
                    "auto_precision_lower": r.auto_precision_lower,
                    "estimated_precision": r.estimate.expected_auto_precision,
                    "exact_set_accuracy": r.exact_set_accuracy,
                    "threshold": r.threshold,
                    "threshold_source": r.threshold_source,
                    "target": r.target,
                    "state": r.state,
                    "holds": r.holds,
                    "unseen_labels": r.unseen_labels,
                    "by_direction": {k: v.model_dump() for k, v in r.by_direction.items()},
                    "by_currency": {k: v.model_dump() for k, v in r.by_currency.items()},
                }
            )
    return rows
