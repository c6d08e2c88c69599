"""The trainer reads its months one at a time from the dataset store (StoredMonth), and that
trains the very model the concatenated history did."""

from __future__ import annotations

import weakref

import pandas as pd
import pytest

from cashmatch.domain.evaluation.scoring import batches
from cashmatch.domain.events import MonthClosed, make_event
from cashmatch.domain.matching import MatcherConfig, train_matcher
from cashmatch.entrypoints.service_table import HANDLERS
from cashmatch.service_layer.dispatch import dispatch
from cashmatch.service_layer.publishing import publish_event

pytestmark = pytest.mark.integration


class Watched:
    """A month source that counts how many of its loaded batches are alive at each load."""

    def __init__(self, inner, alive: list[int], peaks: list[int]) -> None:
        self.inner, self.alive, self.peaks = inner, alive, peaks
        self.month, self.labelled, self.n_transfers = (
            inner.month,
            inner.labelled,
            inner.n_transfers,
        )

    def load(self):
        batch = self.inner.load()
        self.alive[0] += 1
        self.peaks.append(self.alive[0])
        weakref.finalize(batch, self._gone)
        return batch

    def _gone(self) -> None:
        self.alive[0] -= 1


@pytest.fixture(scope="module")
def collected(small_warehouse, tmp_path_factory):
    from cashmatch.bootstrap import bootstrap
    from cashmatch.settings import load_settings

    ports = bootstrap(
        load_settings(workspace=tmp_path_factory.mktemp("ws"), warehouse=str(small_warehouse))
    )
    publish_event(ports.bus, make_event(MonthClosed(month="2025-04"), source="/test"))
    (delivery,) = ports.bus.pull("collector", max_messages=1)
    dispatch("collector", HANDLERS["collector"], delivery, ports)
    manifest = ports.datasets.read_manifest(ports.blobs.uri("datasets/manifests/2025-04.json"))
    return ports, manifest


def _without_timings(metrics: dict[str, float]) -> dict[str, float]:
    return {
        k: v for k, v in metrics.items() if not k.startswith("seconds_") and k != "train_seconds"
    }


def test_month_by_month_trains_the_model_the_whole_history_did(collected):
    ports, manifest = collected
    cfg = MatcherConfig(seed=3)
    whole = train_matcher(batches(ports.datasets.training_data(manifest)), cfg)
    alive, peaks = [0], []
    months = [Watched(m, alive, peaks) for m in ports.datasets.training_months(manifest)]
    by_month = train_matcher(months, cfg)

    assert len(months) == 4
    assert _without_timings(by_month.training_metrics) == _without_timings(whole.training_metrics)
    last = ports.datasets.training_months(manifest)[-1].load()
    pd.testing.assert_frame_equal(
        by_month.predict(last.transfers, last.invoices),
        whole.predict(last.transfers, last.invoices),
    )
    # every month was read when needed and let go before the next one was read
    assert len(peaks) >= len(months)
    assert max(peaks) == 1


def test_a_stored_month_knows_its_size_without_reading_it(collected):
    ports, manifest = collected
    months = ports.datasets.training_months(manifest)
    whole = ports.datasets.training_data(manifest)
    assert [m.month for m in months] == manifest["training_months"]
    assert [m.n_transfers for m in months] == [
        int((whole.transfers["month"] == m.month).sum()) for m in months
    ]
    assert all(m.labelled for m in months)


def test_a_changed_slice_is_refused_when_its_month_is_read(collected):
    ports, manifest = collected
    tampered = {**manifest, "slices": {**manifest["slices"]}}
    first = manifest["training_months"][0]
    tampered["slices"][first] = {**manifest["slices"][first], "transfers": "0" * 64}
    (month, *_) = ports.datasets.training_months(tampered)
    with pytest.raises(ValueError, match=f"training slice {first}/transfers changed"):
        month.load()
