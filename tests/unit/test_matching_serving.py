"""The matcher as the service uses it: ranked candidates, cached knowledge, and answers that do
not depend on how requests are grouped (the service's and the model's side)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from cashmatch.domain.match_api import MatchRequest, json_records
from cashmatch.domain.matching import MatcherConfig, TrainedMatcher, month_batches, train_matcher
from cashmatch.domain.matching.toydata import toy_data
from cashmatch.service_layer.matcher import LoadedModel, MatcherService
from tests.fakes.models import model_record

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def toy():
    d = toy_data(n_months=5, per_month=120, n_counterparties=40, seed=5)
    return month_batches(d.invoices, d.transfers, d.matches)


@pytest.fixture(scope="module")
def model(toy) -> TrainedMatcher:
    config = MatcherConfig(pair_max_iter=40, set_max_iter=40, calibration_months=1)
    return train_matcher(toy[:-1], config)


def _ranked(candidates: pd.DataFrame, transfer_id: str) -> list[tuple[str, float]]:
    mine = candidates[candidates["transfer_id"] == transfer_id]
    return list(zip(mine["invoice_id"], mine["score"], strict=True))


def test_a_transfer_alone_gets_the_candidates_it_gets_in_its_month(model, toy):
    # The small path (one transfer, one call) against the month in one call: blocking and
    # features of a transfer depend on it and the open invoices only. Booked on one day, no
    # transfer closes an invoice before another is judged, so every ranking must be the same.
    month = toy[-1]
    transfers = month.transfers.assign(booking_date=month.transfers["booking_date"].max())
    _, in_month = model.predict_with_candidates(transfers, month.invoices)
    assert in_month["transfer_id"].nunique() > 0.8 * len(transfers)
    for k in range(0, len(transfers), 2):
        one = transfers.iloc[[k]]
        transfer_id = str(one["transfer_id"].iloc[0])
        _, alone = model.predict_with_candidates(one, month.invoices)
        got, expected = _ranked(alone, transfer_id), _ranked(in_month, transfer_id)
        assert [i for i, _ in got] == [i for i, _ in expected]
        assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-12)


def test_requests_predicted_together_answer_as_alone(model, toy):
    # Several transfers each (settlement and its second pass run inside a request), invoice
    # lists that overlap and differ, one without open amounts, one with no invoices at all.
    month = toy[-1]
    tr, inv = month.transfers, month.invoices
    requests = [
        (tr.iloc[:40], inv.iloc[:90]),
        (tr.iloc[40:41], inv.iloc[30:]),
        (tr.iloc[41:80], inv.drop(columns="open_amount")),
        (tr.iloc[80:82], inv.iloc[:0]),
        (tr.iloc[82:], inv),
    ]
    together = model.answers_many(requests)
    assert [len(answers) for answers in together] == [len(t) for t, _ in requests]
    for (transfers, invoices), answers in zip(requests, together, strict=True):
        assert answers == model.answers(transfers, invoices)


def test_answers_say_what_the_prediction_frames_say(model, toy):
    month = toy[-1]
    answers = model.answers(month.transfers, month.invoices)
    predicted, candidates = model.predict_with_candidates(month.transfers, month.invoices)
    assert [a.transfer_id for a in answers] == month.transfers["transfer_id"].tolist()
    assert any(len(a.invoice_ids) > 1 for a in answers) and any(not a.invoice_ids for a in answers)
    rows = predicted.groupby("transfer_id", sort=False)
    listed = candidates.groupby("transfer_id", sort=False)
    for answer in answers:
        mine = rows.get_group(answer.transfer_id)
        assert answer.invoice_ids == mine["invoice_id"].dropna().tolist()
        assert answer.amounts == mine["amount"][mine["invoice_id"].notna()].tolist()
        assert answer.confidence == mine["confidence"].iloc[0]
        assert answer.decision == mine["decision"].iloc[0]
        ranked = listed.get_group(answer.transfer_id) if answer.candidates else candidates[:0]
        assert answer.candidates == list(
            zip(ranked["invoice_id"], ranked["score"], ranked["proposed"], strict=True)
        )


def test_the_models_own_knowledge_is_indexed_once(model, toy):
    first = model._knowledge(None)
    assert model._knowledge(None) == first and model._knowledge(None)[0] is first[0]
    # History is merged per call; the model's own index stays as it was.
    with_history = model._knowledge(toy[:2])
    assert with_history[0] is not first[0] and model._knowledge(None)[0] is first[0]
    # A model whose knowledge is replaced indexes the new one.
    clone = TrainedMatcher(
        model.config,
        model.pair_model,
        model.set_model,
        model.threshold,
        model.observations,
        model.training_metrics,
        model.habits,
    )
    clone._knowledge(None)
    clone.observations = clone.observations.iloc[:0]
    assert clone._knowledge(None)[0].empty


# --------------------------------------------------------------------------- the service


@pytest.fixture(scope="module")
def requests_(toy) -> list[MatchRequest]:
    """Single requests of the last month, each with its own slice of the open invoices."""
    month = toy[-1]
    invoices = json_records(month.invoices)
    out = []
    for k, transfer in enumerate(json_records(month.transfers)[:24]):
        own = invoices[(k * 7) % 60 :][:70]  # overlapping, different lists
        out.append(MatchRequest.model_validate({"transfer": transfer, "open_invoices": own}))
    return out


def _service(model: TrainedMatcher, **kwargs) -> MatcherService:
    service = MatcherService(registry=None, **kwargs)  # type: ignore[arg-type]
    service._current = LoadedModel(model_record("v1"), model, dt.datetime.now(dt.UTC))
    return service


def test_an_answer_lists_the_best_candidates_and_every_proposed_one(model, requests_):
    service = _service(model, max_candidates=3)
    seen_other = False
    for request in requests_:
        answer = service.match(request)
        scores = [c.score for c in answer.candidates]
        assert scores == sorted(scores, reverse=True)
        proposed = [c.invoice_id for c in answer.candidates if c.proposed]
        assert sorted(proposed) == sorted(answer.proposed_invoice_ids)
        others = [c for c in answer.candidates if not c.proposed]
        assert len(answer.candidates) <= max(3, len(proposed) + 3)
        seen_other |= bool(others)
        assert all(c.invoice_id not in answer.proposed_invoice_ids for c in others)
    assert seen_other
    only_proposed = _service(model, max_candidates=0).match(requests_[0])
    assert all(c.proposed for c in only_proposed.candidates)


def test_merged_requests_answer_as_one_by_one(model, requests_):
    # Different invoice lists name different counterparties: what the matcher counts over the
    # invoices (rare name words) must not mix between requests merged into one prediction.
    service = _service(model)
    alone = [service.match(r).model_dump() for r in requests_]
    together = [a.model_dump() for a in service.match_many(requests_)]
    assert together == alone
    same_list = [
        r.model_copy(update={"open_invoices": requests_[0].open_invoices}) for r in requests_
    ]
    merged = [a.model_dump() for a in service.match_many(same_list)]
    assert merged == [service.match(r).model_dump() for r in same_list]
    assert np.isfinite([a["confidence"] for a in merged]).all()


def test_the_service_answers_as_the_model_does_on_frames(model, requests_):
    # The service hands the model numpy Columns built from the request, not DataFrames; the
    # answers must be those of the same rows as frames (what training and evaluation use).
    service = _service(model, max_candidates=1_000)
    for request in requests_:
        answer = service.match(request)
        records = [i.model_dump() for i in request.open_invoices]
        transfers = pd.DataFrame([request.transfer.model_dump()])
        invoices = pd.DataFrame(records).assign(
            open_amount=[
                r["open_amount"] if r["open_amount"] is not None else r["amount"] for r in records
            ]
        )
        for frame, dates in ((transfers, ["booking_date"]), (invoices, ["issue_date", "due_date"])):
            frame[dates] = frame[dates].apply(pd.to_datetime)
        (expected,) = model.answers(transfers, invoices)
        assert answer.proposed_invoice_ids == expected.invoice_ids
        assert [a.amount for a in answer.allocations] == expected.amounts
        assert [(tuple(a.reasons), a.why) for a in answer.allocations] == [
            (r.codes, r.why) for r in expected.reasons
        ]
        assert (answer.confidence, answer.decision) == (expected.confidence, expected.decision)
        assert [
            (c.invoice_id, c.score, c.proposed) for c in answer.candidates
        ] == expected.candidates


def test_the_option_matrix_is_the_set_features_in_order(model, toy):
    from cashmatch.domain.matching.assembly import SET_FEATURES, option_matrix
    from cashmatch.domain.matching.scoring import score_input as _score_input
    from cashmatch.domain.matching.settlement import decide as _decide

    month = toy[-1]
    payer, habits = model._knowledge(None)
    scored = _score_input(month.transfers, month.invoices, payer, model.config, habits=habits)
    opts = _decide(model.pair_model, model.set_model, model.config, scored).opts
    assert len(opts) > len(month.transfers)  # empty, single and multi-invoice options
    expected = opts[SET_FEATURES].to_numpy(np.float32)
    assert option_matrix(opts).dtype == np.float32
    assert np.array_equal(option_matrix(opts), expected)


def test_a_threshold_override_changes_only_the_decisions_and_goes_back(model, requests_):
    from cashmatch.service_layer.matcher import ServingConfig

    service = _service(model)
    before = [service.match(r) for r in requests_]
    confidences = sorted(a.confidence for a in before)
    raised = confidences[len(confidences) // 2] + 1e-9  # about half the answers reach it
    service.apply(ServingConfig(model_version="v1", threshold=raised, threshold_source="test"))
    info = service.model_info()
    assert (info.threshold, info.threshold_source) == (raised, "test")
    after = [service.match(r) for r in requests_]
    for old, new in zip(before, after, strict=True):
        assert new.decision == ("auto" if new.confidence >= raised else "review")
        assert (new.proposed_invoice_ids, new.confidence) == (
            old.proposed_invoice_ids,
            old.confidence,
        )
    auto = [sum(a.decision == "auto" for a in answers) for answers in (before, after)]
    assert auto[0] != auto[1] and 0 < auto[1] < len(after), "the override moved decisions"
    # Without the override the model's own threshold is back, and so are its answers.
    service.apply(ServingConfig(model_version="v1"))
    assert (service.model_info().threshold, service.model_info().threshold_source) == (
        model.threshold,
        "model",
    )
    assert [service.match(r) for r in requests_] == before
    # An override names its version: a replica that keeps another one (refused) ignores it.
    service.apply(ServingConfig(model_version="v-refused", threshold=raised, threshold_source="t"))
    assert service.current.version == "v1"
    assert service.model_info().threshold_source == "model"
