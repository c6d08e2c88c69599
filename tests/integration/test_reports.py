"""The HTML reports: one self-contained file each, with their plots, readable offline."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest

from cashmatch.adapters.local.blobstore import DirectoryBlobStore
from cashmatch.domain.evaluation.curves import curve_from_scores
from cashmatch.domain.matching import evaluate, month_batches, rules_baseline
from cashmatch.domain.matching.metrics import per_transfer
from cashmatch.domain.model_records import Verdict
from cashmatch.domain.monitoring import compute_drift, performance_drift
from cashmatch.service_layer.registry import ModelRegistry
from cashmatch.service_layer.reporting import (
    champion_history,
    precision_coverage_curve,
    render_evaluation_report,
)
from cashmatch.service_layer.reporting.drift import render_drift_report
from tests.fakes.models import model_record

pytestmark = pytest.mark.integration


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def assert_self_contained(html: str) -> None:
    """No script, no stylesheet or image fetched from anywhere: it renders offline."""
    assert html.startswith("<!DOCTYPE html>")
    parser = _Tags()
    parser.feed(html)
    names = [t for t, _ in parser.tags]
    assert "script" not in names and "iframe" not in names
    for tag, attrs in parser.tags:
        for attr in ("src", "href"):
            value = attrs.get(attr)
            assert value is None or value.startswith(("data:", "#")), (tag, attr, value)
    assert "@import" not in html and "url(http" not in html
    # The only URL is the SVG namespace, which is a name, not a fetch.
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) <= {"http://www.w3.org/2000/svg"}


def svgs(html: str) -> list[ET.Element]:
    """Every inline chart, parsed as XML (a malformed one raises)."""
    return [ET.fromstring(m) for m in re.findall(r"<svg.*?</svg>", html, flags=re.S)]


@pytest.fixture(scope="module")
def months():
    from cashmatch.synth import SynthConfig, generate

    data = generate(SynthConfig(months=6, start="2025-01", scale=0.2, seed=5, shift_from="2025-05"))
    return month_batches(data.invoices, data.transfers, data.matches)


@pytest.fixture(scope="module")
def scored(months):
    """Rules predictions on two months, and two noisy 'models' over the same answers."""
    batch = months[-1]
    predictions = rules_baseline(batch.transfers, batch.invoices)
    pt = per_transfer(predictions, batch.transfers, batch.matches)
    exact = pt["exact"].to_numpy()
    rng = np.random.default_rng(1)
    candidate = np.where(exact, rng.uniform(0.4, 1, len(pt)), rng.uniform(0, 0.7, len(pt)))
    champion = np.where(exact, rng.uniform(0.3, 1, len(pt)), rng.uniform(0, 0.8, len(pt)))
    return {
        "rules": precision_coverage_curve(predictions, batch.transfers, batch.matches),
        "candidate": curve_from_scores(candidate, exact),
        "champion": curve_from_scores(champion, exact),
        "metrics": evaluate(predictions, batch.transfers, batch.matches),
    }


def _verdict(**fields) -> Verdict:
    """A verdict as the evaluator records it (what the report is drawn from)."""
    return Verdict(
        decided_at=dt.datetime(2025, 7, 1, tzinfo=dt.UTC),
        event_id="e-verdict",
        caused_by="e-trained",
        **fields,
    )


def test_evaluation_report_is_one_offline_page_with_its_plots(tmp_path, scored):
    metrics = scored["metrics"]
    history = [
        ("2025-03", "m-1", {**metrics, "auto_rate@99": 0.41}),
        ("2025-04", "m-1", {**metrics, "auto_rate@99": 0.41}),
        ("2025-05", "m-2", {**metrics, "auto_rate@99": 0.47}),
    ]
    verdict = _verdict(
        version="m-3",
        passed=False,
        reasons=["auto_rate@99 0.452 does not beat the champion's 0.470 by 0.002", "<b>x</b>"],
        metrics={**metrics, "auto_rate@99": 0.452},
        champion_metrics={**metrics, "auto_rate@99": 0.47},
        baseline_metrics=metrics,
        champion_version="m-2",
        test_set_version="test-abc",
    )
    page = render_evaluation_report(
        verdict,
        curves={k: scored[k] for k in ("candidate", "champion", "rules")},
        champion_history=history,
        month="2025-06",
    )
    path = tmp_path / "reports" / "evaluations" / "m-3.html"
    path.parent.mkdir(parents=True)
    path.write_bytes(page)
    html = path.read_text(encoding="utf-8")

    assert_self_contained(html)
    charts = svgs(html)
    assert len(charts) == 2  # the curves, and the champions' history
    curves_svg = ET.tostring(charts[0], encoding="unicode")
    assert curves_svg.count("<ns0:polyline") + curves_svg.count("<polyline") == 3
    assert "99% target" in curves_svg
    assert "REJECTED" in html
    assert "does not beat the champion" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html  # reasons are text, never markup
    for name in ("candidate", "champion", "rules", "auto_rate@99", "exact_set_accuracy"):
        assert name in html
    for month in ("2025-03", "2025-04", "2025-05"):
        assert month in html
    assert "candidate − champion" in html and "-0.018" in html


def test_evaluation_report_without_champion_or_history(scored):
    verdict = _verdict(
        version="m-1",
        passed=True,
        reasons=["no champion yet: passes the absolute floors"],
        metrics=scored["metrics"],
        champion_metrics=None,
        baseline_metrics=scored["metrics"],
        champion_version=None,
    )
    html = render_evaluation_report(
        verdict,
        curves={"candidate": scored["candidate"], "champion": None, "rules": scored["rules"]},
    ).decode()
    assert_self_contained(html)
    assert len(svgs(html)) == 1
    assert "PASSED" in html and "No champion history yet" in html
    assert "candidate − champion" not in html


def test_drift_report_has_histograms_and_rates(tmp_path, months):
    perf = performance_drift(
        {"auto_rate@99": 0.8}, {"auto_rate@99": 0.6}, champion_version="m-2", max_drop=0.05
    )
    report = compute_drift(months[:-1], months[-1], performance=perf)
    path = tmp_path / "2025-06.html"
    path.write_bytes(render_drift_report(report))
    html = path.read_text(encoding="utf-8")

    assert_self_contained(html)
    titles = [c.findtext("{http://www.w3.org/2000/svg}title") for c in svgs(html)]
    assert titles == [
        "amount: reference vs 2025-06",
        "payment_delay_days: reference vs 2025-06",
        "pair_name_similarity: reference vs 2025-06",
        "pair_amount_share: reference vs 2025-06",
        "Rates: reference vs 2025-06",
    ]
    assert "DRIFT" in html and "reference_rate" in html
    assert "champion m-2 auto_rate@99" in html
    assert "1,000" in html  # the amount axis is labelled in money, not in log10


def test_champion_history_from_the_registry(tmp_path):
    registry = ModelRegistry(DirectoryBlobStore(tmp_path))
    at = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    outcomes = [
        ("m-1", "2025-03", True, None),
        ("m-2", "2025-04", False, "m-1"),
        ("m-3", "2025-05", True, "m-1"),
    ]
    for i, (version, month, passed, champion) in enumerate(outcomes):
        registry.register(
            model_record(
                version,
                dataset_version=f"ds-{month}",
                training_months=["2025-01", month],
                created_at=at + dt.timedelta(hours=i),
            )
        )
        registry.record_verdict(
            Verdict(
                version=version,
                passed=passed,
                reasons=["because"],
                metrics={"auto_rate@99": [0.4, 0.5, 0.6][i]},
                baseline_metrics={},
                champion_version=champion,
                champion_metrics=None,
                decided_at=at + dt.timedelta(hours=i),
                event_id=f"v-{i}",
                caused_by=f"t-{i}",
            )
        )
    assert champion_history(registry) == [
        ("2025-03", "m-1", {"auto_rate@99": 0.4}),
        ("2025-04", "m-1", {"auto_rate@99": 0.4}),
        ("2025-05", "m-3", {"auto_rate@99": 0.6}),
    ]


def test_reports_and_curves_are_stored_per_version(tmp_path, scored):
    from cashmatch.service_layer.reporting import load_curve, report_key, save_curve, save_report

    blobs = DirectoryBlobStore(tmp_path)
    assert load_curve(blobs, "m-1") is None
    save_curve(blobs, "m-1", scored["candidate"])
    assert load_curve(blobs, "m-1").equals(scored["candidate"])
    uri = save_report(blobs, "m-1", b"<!DOCTYPE html>")
    assert blobs.key_from_uri(uri) == report_key("m-1") == "reports/evaluations/m-1.html"
