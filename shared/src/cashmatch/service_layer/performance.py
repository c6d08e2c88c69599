"""Realized performance: what the served versions decided in a closed month, against its labels.

At every close the monitor replays, for each version that served the month, the answers it gave
(`match_month`, exactly what `cashmatch match --version V --month M` writes: the month's
transfers against the invoices open then, with the payer habits of the months before) and
scores them at the threshold that was in force. A record is written once per (month, version);
a redelivered or republished close reads it back instead of replaying.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pandas as pd

from cashmatch.domain.evaluation.realized import Estimate, Realized, estimate, realize
from cashmatch.domain.model_records import PointerChange
from cashmatch.ports import BlobNotFound, PreconditionFailed
from cashmatch.service_layer.batch_matching import match_month
from cashmatch.service_layer.context import Ports
from cashmatch.service_layer.model_store import load_verified
from cashmatch.service_layer.month_reading import read_month

PREFIX = "performance"
# Above every calibrated confidence (they lie in [0, 1]): nothing is settled without a person.
NOTHING_AUTO = math.nextafter(1.0, 2.0)


def record_key(month: str, version: str) -> str:
    """Blob key of one version's realized performance on one month."""
    return f"{PREFIX}/{month}/{version}.json"


def _month_span(month: str) -> tuple[dt.datetime, dt.datetime]:
    period = pd.Period(month, freq="M")
    start = period.start_time.to_pydatetime().replace(tzinfo=dt.UTC)
    end = (period + 1).start_time.to_pydatetime().replace(tzinfo=dt.UTC)
    return start, end


def served_versions(ports: Ports, month: str, closed_at: dt.datetime) -> list[str]:
    """The versions that served `month`'s transfers, oldest first, from the deployed pointer.

    Those deployed during the month (or before it and still serving at its start). When none
    was (a replay or the demo closes months in quick succession, long after their dates), the
    version deployed when the close arrived. A version trained on the month itself is never
    counted: it cannot have decided the month's transfers.
    """
    history: list[PointerChange] = ports.registry.deployed()[0].history
    start, end = _month_span(month)
    changes = [c for c in history if c.at <= closed_at]
    if not changes:
        return []
    served: list[str] = []
    for change, following in zip(changes, [*changes[1:], None], strict=True):
        until = following.at if following is not None else closed_at
        if change.at < end and until > start:
            served.append(change.version)
    if not served and changes:
        served = [changes[-1].version]
    wanted: list[str] = []
    for version in served:
        try:
            record = ports.registry.get(version)
        except KeyError:
            continue
        if version not in wanted and all(m < month for m in record.training_months):
            wanted.append(version)
    return wanted


def threshold_in_force(
    ports: Ports, version: str, own: float, at: dt.datetime
) -> tuple[float, str]:
    """The threshold replicas serving `version` used at `at`, and where it came from."""
    override = ports.registry.guardrail()[0].in_force_at(at)
    if override is not None and override.applies_to(version):
        return override.threshold, override.describe()
    return own, "model"


def stored(ports: Ports, month: str, version: str) -> Realized | None:
    """The stored record of (month, version), if any."""
    try:
        return Realized.model_validate_json(ports.blobs.get(record_key(month, version)).data)
    except BlobNotFound:
        return None


def realized(ports: Ports, month: str, version: str, closed_at: dt.datetime) -> Realized:
    """The realized performance of `version` on closed `month`: stored once, then read back.

    ValueError when the month has no transfers to replay.
    """
    found = stored(ports, month, version)
    if found is not None:
        return found
    model = load_verified(ports.blobs, ports.registry.get(version))
    predictions, _ = match_month(model, ports.warehouse, month)
    labelled = read_month(ports.warehouse, month)
    answered = set(predictions["transfer_id"].astype(str))
    transfers = labelled.transfers[labelled.transfers["transfer_id"].astype(str).isin(answered)]
    threshold, source = threshold_in_force(ports, version, model.threshold, closed_at)
    record = realize(
        predictions,
        transfers,
        labelled.matches,
        month=month,
        version=version,
        threshold=threshold,
        threshold_source=source,
        target=ports.settings.guardrail_target,
    )
    data = json.dumps(record.model_dump(mode="json"), indent=2).encode()
    try:
        ports.blobs.put(record_key(month, version), data, if_generation_match=0)
    except PreconditionFailed:  # another delivery wrote it first: theirs stands
        return Realized.model_validate_json(ports.blobs.get(record_key(month, version)).data)
    return record


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


def estimate_open_month(ports: Ports, month: str, version: str) -> Estimate:
    """Expected auto share and precision of `version` on `month` before its labels exist:
    the calibrated confidences of its answers on the transfers booked so far."""
    model = load_verified(ports.blobs, ports.registry.get(version))
    predictions, _ = match_month(model, ports.warehouse, month)
    threshold, _ = threshold_in_force(ports, version, model.threshold, ports.clock())
    confidence = predictions.groupby("transfer_id", sort=False)["confidence"].max()
    return estimate(confidence.to_numpy(), threshold)
