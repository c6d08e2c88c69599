"""The realized-performance records in the blob store, read without the model: the guardrail
(in the deployer's image, no scikit-learn), `status` and the console read them here; the monitor
writes them (`performance.py`)."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from pydantic import ValidationError

from cashmatch.domain.evaluation.promise import RECORD_FORMAT, Realized, state_of
from cashmatch.ports import BlobNotFound
from cashmatch.service_layer.context import Ports

PREFIX = "performance"
# Above every calibrated confidence (they lie in [0, 1]): nothing is settled without a person.
NOTHING_AUTO = math.nextafter(1.0, 2.0)
log = logging.getLogger(__name__)


class UnreadableRecord(ValueError):
    """A stored record this code cannot read (not JSON, a newer format, fields missing)."""


def _from_format_1(raw: dict[str, Any]) -> dict[str, Any]:
    """A format-1 record (before `state`): its state follows from the counts it kept."""
    migrated = dict(raw)
    if "state" not in migrated and {"auto_correct", "auto", "target"} <= migrated.keys():
        migrated["state"] = state_of(
            int(migrated["auto_correct"]), int(migrated["auto"]), float(migrated["target"])
        )
    migrated.setdefault("threshold_source", "model")
    migrated.setdefault("holding_threshold", None)
    migrated["record_format"] = RECORD_FORMAT
    return migrated


def parse_record(key: str, data: bytes) -> Realized:
    """The record stored at `key`, an older format migrated; UnreadableRecord naming the key
    and what is wrong otherwise."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnreadableRecord(f"{key}: not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise UnreadableRecord(f"{key}: not a JSON object")
    found = raw.get("record_format", 1)
    if not isinstance(found, int) or found > RECORD_FORMAT:
        raise UnreadableRecord(
            f"{key}: record format {found!r}, this cashmatch reads up to {RECORD_FORMAT} "
            "(written by a newer version?)"
        )
    if found == 1:
        raw = _from_format_1(raw)
    try:
        return Realized.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in exc.errors()
        )
        raise UnreadableRecord(f"{key}: format {found}, {problems}") from None


ESTIMATES = "estimates"  # beside, not under, PREFIX: `months_realized` reads all of PREFIX


def estimate_key(month: str, version: str) -> str:
    """Blob key of the estimate made for open `month` when `version` was rolled out."""
    return f"{ESTIMATES}/{month}/{version}.json"


def rollout_estimate(ports: Ports, month: str, version: str) -> dict[str, Any] | None:
    """The estimate recorded at `version`'s roll-out for `month` (None when none was, or it
    cannot be read: it is a figure shown beside the realized one, not one anything acts on)."""
    key = estimate_key(month, version)
    try:
        found = json.loads(ports.blobs.get(key).data)
    except BlobNotFound:
        return None
    except (ValueError, UnicodeDecodeError) as exc:
        log.warning("roll-out estimate skipped: %s: not JSON (%s)", key, exc)
        return None
    return found if isinstance(found, dict) else None


def record_key(month: str, version: str) -> str:
    """Blob key of one version's realized performance on one month."""
    return f"{PREFIX}/{month}/{version}.json"


def stored(ports: Ports, month: str, version: str) -> Realized | None:
    """The stored record of (month, version), if any; UnreadableRecord (a ValueError) when it
    cannot be read: the monitor then logs it rather than overwrite what it cannot read."""
    key = record_key(month, version)
    try:
        return parse_record(key, ports.blobs.get(key).data)
    except BlobNotFound:
        return None


def months_realized(ports: Ports) -> dict[str, list[Realized]]:
    """Every stored record, by month (oldest first), each month's versions oldest first.

    A record that cannot be read is left out with one warning naming its key: one bad file
    must not hide every other month (or stop the guardrail reading them)."""
    result: dict[str, list[Realized]] = {}
    for key in ports.blobs.list(f"{PREFIX}/"):
        if not key.endswith(".json"):
            continue
        try:
            record = parse_record(key, ports.blobs.get(key).data)
        except UnreadableRecord as exc:
            log.warning("performance record skipped: %s", exc)
            continue
        result.setdefault(record.month, []).append(record)
    return dict(sorted(result.items()))


def summary_rows(ports: Ports) -> list[dict[str, Any]]:
    """One JSON-ready row per (closed month, version that served it), oldest first."""
    rows = []
    for month, records in months_realized(ports).items():
        for r in records:
            at_rollout = (rollout_estimate(ports, month, r.version) or {}).get("estimate") or {}
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
                    # what the confidences promised when the version was rolled out, before the
                    # month's end (None when no roll-out preceded the month, or nothing was booked)
                    "estimated_precision_at_rollout": at_rollout.get("expected_auto_precision"),
                    "estimated_auto_share_at_rollout": at_rollout.get("auto_share"),
                    "exact_set_accuracy": r.exact_set_accuracy,
                    "threshold": r.threshold,
                    "threshold_source": r.threshold_source,
                    "holding_threshold": r.holding_threshold,
                    "holding_auto_share": r.holding_auto_share,
                    "target": r.target,
                    "state": r.state,
                    "holds": r.holds,
                    "unseen_labels": r.unseen_labels,
                    "by_direction": {k: v.model_dump() for k, v in r.by_direction.items()},
                    "by_currency": {k: v.model_dump() for k, v in r.by_currency.items()},
                }
            )
    return rows
