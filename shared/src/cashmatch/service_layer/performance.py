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

import pandas as pd

from cashmatch.domain.evaluation.promise import Estimate, Realized
from cashmatch.domain.evaluation.realized import estimate, realize
from cashmatch.domain.model_records import PointerChange
from cashmatch.ports import BlobNotFound, PreconditionFailed
from cashmatch.service_layer.batch_matching import match_month
from cashmatch.service_layer.context import Ports
from cashmatch.service_layer.model_store import ArtifactDigestMismatch, load_verified
from cashmatch.service_layer.month_reading import read_month
from cashmatch.service_layer.performance_records import estimate_key, record_key, stored


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
    wanted = [v for v in dict.fromkeys(served) if _could_have_served(ports, v, month)]
    if not wanted:
        # The newest deployed version that could have decided the month. Walking back, not just
        # the last change: a close republished after the month's own model was rolled out must
        # find the version that served before it, not nothing.
        for change in reversed(changes):
            if _could_have_served(ports, change.version, month):
                return [change.version]
    return wanted


def _could_have_served(ports: Ports, version: str, month: str) -> bool:
    """Known to the registry and trained only on months before `month`."""
    try:
        record = ports.registry.get(version)
    except KeyError:
        return False
    return all(m < month for m in record.training_months)


def threshold_in_force(
    ports: Ports, version: str, own: float, at: dt.datetime
) -> tuple[float, str]:
    """The threshold replicas serving `version` used at `at`, and where it came from."""
    override = ports.registry.guardrail()[0].in_force_at(at)
    if override is not None and override.applies_to(version):
        return override.threshold, override.describe()
    return own, "model"


def realized(ports: Ports, month: str, version: str, closed_at: dt.datetime) -> Realized:
    """The realized performance of `version` on closed `month`: stored once, then read back.

    ValueError when the month has no transfers to replay.
    """
    found = stored(ports, month, version)
    if found is not None:
        return found
    model = load_verified(ports.blobs, ports.registry.get(version))
    predictions, _ = match_month(model, ports.warehouse, month, chunk=ports.settings.match_chunk)
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
        found = stored(ports, month, version)
        assert found is not None  # it was just written by the one that won
        return found
    return record


def estimate_open_month(ports: Ports, month: str, version: str) -> Estimate:
    """Expected auto share and precision of `version` on `month` before its labels exist:
    the calibrated confidences of its answers on the transfers booked so far."""
    model = load_verified(ports.blobs, ports.registry.get(version))
    predictions, _ = match_month(model, ports.warehouse, month, chunk=ports.settings.match_chunk)
    threshold, _ = threshold_in_force(ports, version, model.threshold, ports.clock())
    confidence = predictions.groupby("transfer_id", sort=False)["confidence"].max()
    return estimate(confidence.to_numpy(), threshold)


def open_month_after(month: str) -> str:
    """The month after closed `month`: the one a version rolled out at that close serves."""
    return str(pd.Period(month, freq="M") + 1)


def record_rollout_estimate(
    ports: Ports, closed: str, version: str, caused_by: str
) -> tuple[str, Estimate | None, str | None]:
    """Estimate the month after `closed` for `version`, just rolled out, and store it once at
    estimates/<month>/<version>.json: (month, estimate or None, why not). A month with nothing
    booked yet, or a model that cannot be loaded, is recorded with the reason, not raised: the
    estimate is a figure to compare at the close, and its absence must not stop anything."""
    month = open_month_after(closed)
    key = estimate_key(month, version)
    try:
        ports.blobs.get(key)
        return month, None, "already recorded"
    except BlobNotFound:
        pass
    found: Estimate | None = None
    why_not: str | None = None
    try:
        found = estimate_open_month(ports, month, version)
    except (ValueError, KeyError, ArtifactDigestMismatch, ImportError) as exc:
        why_not = f"{type(exc).__name__}: {str(exc).strip(chr(39))}"
    record = {
        "record_format": 1,
        "month": month,
        "version": version,
        "after_close_of": closed,
        "at": ports.clock().isoformat(),
        "caused_by": caused_by,
        "estimate": None if found is None else found.model_dump(mode="json"),
        "why_not": why_not,
    }
    try:
        ports.blobs.put(key, json.dumps(record, indent=2).encode(), if_generation_match=0)
    except PreconditionFailed:  # a concurrent delivery recorded it first
        return month, None, "already recorded"
    return month, found, why_not
