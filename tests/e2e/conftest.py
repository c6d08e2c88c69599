"""What the e2e tests of the matcher on Ray Serve share: one small model trained per session."""

from __future__ import annotations

import pytest

from cashmatch.domain.match_api import json_records


@pytest.fixture(scope="session")
def small_model() -> tuple[bytes, list[dict], list[dict]]:
    """A quickly trained matcher, plus the transfers and open invoices of its last month."""
    from cashmatch.domain.matching import MatcherConfig, month_batches, train_matcher
    from cashmatch.synth import SynthConfig, generate

    data = generate(SynthConfig(months=3, scale=0.1, seed=5))
    batches = month_batches(data.invoices, data.transfers, data.matches)
    config = MatcherConfig(pair_max_iter=30, set_max_iter=30, n_folds=2, calibration_months=1)
    model = train_matcher(batches, config)
    last = batches[-1]
    return model.to_bytes(), json_records(last.transfers), json_records(last.invoices)
