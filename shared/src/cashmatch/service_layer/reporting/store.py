"""Where evaluation reports and their curves live in the blob store.

A version's precision–coverage curve and its per-transfer outcomes are kept beside its report,
so when that version is the champion later they are read back instead of scoring it on the test
set again (the outcomes are what the paired comparison with a candidate needs).
"""

from __future__ import annotations

import pandas as pd

from cashmatch.ports import BlobNotFound, BlobStore
from cashmatch.service_layer.dataset_store import frame_bytes, read_frame

EVALUATIONS = "reports/evaluations"
DRIFT = "reports/drift"


def report_key(version: str) -> str:
    """Blob key of a version's evaluation report."""
    return f"{EVALUATIONS}/{version}.html"


def curve_key(version: str) -> str:
    """Blob key of a version's precision–coverage curve on the frozen test set."""
    return f"{EVALUATIONS}/{version}.curve.parquet"


def outcomes_key(version: str) -> str:
    """Blob key of a version's per-transfer outcomes on the frozen test set."""
    return f"{EVALUATIONS}/{version}.outcomes.parquet"


def save_report(blobs: BlobStore, version: str, html: bytes) -> str:
    """Write (atomically) a version's report; return its URI for Verdict.report_uri."""
    key = report_key(version)
    blobs.put(key, html)
    return blobs.uri(key)


def save_curve(blobs: BlobStore, version: str, curve: pd.DataFrame) -> None:
    """Keep a version's curve for the reports where it is the champion."""
    blobs.put(curve_key(version), frame_bytes(curve))


def load_curve(blobs: BlobStore, version: str) -> pd.DataFrame | None:
    """A version's stored curve, or None when it was judged before curves were kept."""
    try:
        return read_frame(blobs.get(curve_key(version)).data)
    except BlobNotFound:
        return None


def save_outcomes(blobs: BlobStore, version: str, outcomes: pd.DataFrame) -> None:
    """Keep a version's per-transfer outcomes for the paired comparisons where it is champion."""
    blobs.put(outcomes_key(version), frame_bytes(outcomes))


def load_outcomes(blobs: BlobStore, version: str) -> pd.DataFrame | None:
    """A version's stored outcomes, or None when it was judged before outcomes were kept."""
    try:
        return read_frame(blobs.get(outcomes_key(version)).data)
    except BlobNotFound:
        return None


def drift_report_key(month: str) -> str:
    """Blob key of a month's HTML drift report (the monitor's)."""
    return f"{DRIFT}/{month}.html"


def drift_summary_key(month: str) -> str:
    """Blob key of a month's JSON drift summary, written after the report: it marks the work
    done."""
    return f"{DRIFT}/{month}.json"
