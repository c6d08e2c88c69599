"""The matcher's HTTP API fuzzed from its own OpenAPI document (schemathesis).

Schemathesis generates requests from the schema the API publishes (valid ones and, by
mutation, invalid ones), sends them to the FastAPI app with a real model behind it (trained on
toy data), and checks every answer: never a 5xx, a status the document declares, a body that
conforms to the declared response schema, and a 4xx for what the schema forbids. The app is
the one the Ray Serve replicas run (`create_api`), over the same `MatcherService` (through
`ThreadedBackend`), called in process through its ASGI interface; `tests/e2e/test_matcher_http.py` sends requests over real
HTTP through Ray Serve.
"""

from __future__ import annotations

import datetime as dt
import functools

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks as sc
from schemathesis.specs.openapi import checks as oc

from cashmatch.domain.matching import MatcherConfig, month_batches, train_matcher
from cashmatch.domain.matching.toydata import toy_data
from cashmatch.entrypoints.matcher.api import Limits, ThreadedBackend, create_api
from cashmatch.service_layer.matcher import LoadedModel, MatcherService
from tests.fakes.models import model_record

pytestmark = pytest.mark.integration


class _ToyService:
    """A MatcherService whose model is trained on toy data at the first request, not when
    pytest collects this module (collecting `-m unit` must not pay for it)."""

    @functools.cached_property
    def _service(self) -> MatcherService:
        data = toy_data(n_months=4, per_month=80, n_counterparties=30, seed=3)
        months = month_batches(data.invoices, data.transfers, data.matches)
        config = MatcherConfig(pair_max_iter=30, set_max_iter=30, calibration_months=1)
        service = MatcherService(registry=None)  # type: ignore[arg-type]
        model = train_matcher(months, config)
        service._current = LoadedModel(model_record("v1"), model, dt.datetime.now(dt.UTC))
        return service

    def __getattr__(self, name: str):
        return getattr(self._service, name)


# small limits, so that "too many" is reachable by generated requests too
APP = create_api(
    ThreadedBackend(_ToyService()),  # type: ignore[arg-type]
    Limits(max_transfers=20, max_invoices=60),
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)

CHECKS = [
    sc.not_a_server_error,
    oc.status_code_conformance,
    oc.content_type_conformance,
    oc.response_schema_conformance,
    oc.negative_data_rejection,
]


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure here is reproducible
    suppress_health_check=list(HealthCheck),
)
def test_the_api_answers_what_its_schema_says(case):
    case.call_and_validate(checks=CHECKS)
