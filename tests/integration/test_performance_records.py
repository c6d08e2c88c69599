"""Stored realized-performance records across formats: an older record (format 1, before
`state`) is migrated on reading, one this code cannot read is left out with one warning naming
its key, and `cashmatch performance` shows the rest instead of a traceback."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from cashmatch.adapters.local.blobstore import DirectoryBlobStore
from cashmatch.domain.evaluation.promise import RECORD_FORMAT, Estimate, GroupFigures, Realized
from cashmatch.service_layer import performance_records

pytestmark = pytest.mark.integration
CASHMATCH = str(Path(sys.executable).with_name("cashmatch"))


def _record(month: str, version: str, auto: int, right: int) -> Realized:
    figures = GroupFigures(
        transfers=1000,
        auto=auto,
        auto_correct=right,
        auto_share=auto / 1000,
        auto_precision=right / auto,
        auto_precision_lower=None,
        exact_set_accuracy=0.9,
        review_share=1 - auto / 1000,
    )
    return Realized(
        **figures.model_dump(),
        month=month,
        version=version,
        threshold=0.9,
        threshold_source="model",
        target=0.99,
        state="holds",
        holds=True,
        unseen_labels=0,
        by_direction={},
        by_currency={},
        estimate=Estimate(
            transfers=1000, auto=auto, auto_share=auto / 1000, expected_auto_precision=0.995
        ),
        holding_threshold=None,
    )


def _format_1(record: Realized) -> bytes:
    """What the first monitor wrote: no record_format, no state, no threshold_source."""
    old = record.model_dump(mode="json")
    for field in ("record_format", "state", "threshold_source", "holding_threshold"):
        old.pop(field)
    return json.dumps(old).encode()


@pytest.fixture
def workspace(tmp_path):
    blobs = DirectoryBlobStore(tmp_path / "blobs")
    current = _record("2025-03", "v-current", auto=800, right=799)
    blobs.put(
        performance_records.record_key("2025-03", "v-current"), current.model_dump_json().encode()
    )
    # 600 auto, 590 right: the Wilson bound is well under 99%, a breach once migrated
    blobs.put(
        performance_records.record_key("2025-04", "v-old"),
        _format_1(_record("2025-04", "v-old", auto=600, right=590)),
    )
    blobs.put(performance_records.record_key("2025-05", "v-torn"), b'{"month": "2025-')
    newer = {**json.loads(current.model_dump_json()), "record_format": RECORD_FORMAT + 1}
    blobs.put(performance_records.record_key("2025-06", "v-newer"), json.dumps(newer).encode())
    return tmp_path, blobs


def test_an_old_record_is_migrated_and_an_unreadable_one_skipped_by_name(workspace, caplog):
    _, blobs = workspace
    with caplog.at_level(logging.WARNING):
        months = performance_records.months_realized(SimpleNamespace(blobs=blobs))
    assert sorted(months) == ["2025-03", "2025-04"]
    (old,) = months["2025-04"]
    assert (old.state, old.threshold_source, old.record_format) == ("breached", "model", 2)
    skipped = [r.getMessage() for r in caplog.records]
    assert len(skipped) == 2
    assert any("performance/2025-05/v-torn.json: not JSON" in m for m in skipped)
    assert any("performance/2025-06/v-newer.json: record format 3" in m for m in skipped)


def test_stored_names_the_key_it_cannot_read(workspace):
    _, blobs = workspace
    with pytest.raises(performance_records.UnreadableRecord, match="v-torn.json"):
        performance_records.stored(SimpleNamespace(blobs=blobs), "2025-05", "v-torn")


def test_cashmatch_performance_shows_the_rest_without_a_traceback(workspace):
    root, _ = workspace
    for extra in ([], ["--json"]):
        run = subprocess.run(
            [CASHMATCH, "--workspace", str(root), "performance", *extra],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr
        warnings = [line for line in run.stderr.splitlines() if "skipped" in line]
        assert len(warnings) == 2, run.stderr
        assert any("v-torn.json" in w for w in warnings)
    rows = json.loads(run.stdout)
    assert [(r["month"], r["state"]) for r in rows] == [
        ("2025-03", "holds"),
        ("2025-04", "breached"),
    ]
