"""`cashmatch demo --scenario shift`: from the shift month on, subscription customers pay the
newest of their equal open invoices first. The champion's threshold no longer holds there: the
close finds exactly one breach, at that month, the guardrail raises the threshold of the version
that broke the promise, and the next month's realized precision is back at the target."""

from __future__ import annotations

import pytest

from cashmatch.bootstrap import bootstrap
from cashmatch.entrypoints.cli import demo
from cashmatch.settings import load_settings

pytestmark = pytest.mark.e2e
MONTHS, BACKFILL = 5, 3  # closes 2025-03 (backfill), 2025-04 (the shift), 2025-05 (after)


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shift") / "demo"
    demo.run_demo(
        folder,
        months=MONTHS,
        backfill=BACKFILL,
        scale=1.0,
        profile="messy",
        serving="none",
        scenario="shift",
    )
    ports = bootstrap(
        load_settings(workspace=folder / "workspace", warehouse=str(folder / "warehouse.duckdb"))
    )
    return ports, demo.shift_rows(ports)


def test_exactly_one_breach_at_the_shift_month_and_the_override_set(shifted):
    ports, rows = shifted
    shift = demo.shift_month(MONTHS)
    assert shift == "2025-04"
    assert [(r["month"], r["state"]) for r in rows if r["state"] == "breached"] == [
        (shift, "breached")
    ]
    (broken,) = [r for r in rows if r["month"] == shift]
    assert broken["auto"] >= 381, "enough auto decisions that the bound, not the count, decides"
    assert broken["auto_precision_lower"] < 0.99
    override = ports.registry.guardrail()[0].override
    assert override is not None and override.month == shift
    assert override.version == broken["version"] and override.threshold > broken["threshold"]
    assert broken["guardrail"] == f"raised to {override.threshold:.4f}"
    assert broken["auto_share_at_raised"] < broken["auto_share"], "the raise costs auto share"


def test_the_month_after_holds_the_target(shifted):
    _, rows = shifted
    (after,) = [r for r in rows if r["month"] == "2025-05"]
    assert after["state"] == "holds" and after["auto_precision_lower"] >= 0.99
