"""The matching pipeline against a recorded reference: same pairs, features and answers.

`data/matching_reference.json.gz` holds one synthetic month (simulator, messy profile) with the
payer and habit knowledge of its three earlier months, and what the pandas implementation that
preceded the numpy one produced for it: every candidate pair with its blocking rules, a
fingerprint of every feature column, and the whole prediction. The pair and set models are
fixed logistic stand-ins, so the reference depends on blocking, features, option building and
settlement only, not on how a model happens to train.

A deliberate change of any of those steps changes the reference; record it again with
`.venv/bin/python tests/unit/test_matching_reference.py --record` and say why in the commit.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.unit

REFERENCE = Path(__file__).parent / "data" / "matching_reference.json.gz"
BLOCKING = {  # recorded with the reference, so a new default does not move it
    "max_fee": 30.0,
    "max_discount": 0.05,
    "max_key_invoices": 40,
    "max_amount_invoices": 25,
    "max_name_token_cps": 5,
    "max_candidates": 60,
}
THRESHOLD = 0.8
PAIR_WEIGHTS = {
    "ref_strong": 4.0,
    "ref_partial": 2.0,
    "ref_S": 0.5,
    "eq_open": 2.5,
    "eq_amount": 0.5,
    "iban_eq": 1.5,
    "name_sim": 1.0,
    "payer_iban_share": 1.0,
    "payer_name_share": 0.5,
    "payer_title_share": 1.0,
    "in_exact_subset": 1.5,
    "in_tol_subset": 0.5,
    "same_amount_rank_old": -0.7,
    "n_cand_t": -0.02,
}
SET_WEIGHTS = {
    "p_mean": 4.0,
    "p_min": 2.0,
    "fit": 1.0,
    "ll_margin": 0.2,
    "n_ref_out": -1.5,
    "p_out_max": -3.0,
    "top1_in": 0.5,
}


class Logistic:
    """A fixed logistic model over named columns, standing in for a trained estimator."""

    def __init__(self, columns: list[str], weights: dict[str, float], bias: float) -> None:
        self.index = np.array([columns.index(c) for c in weights])
        self.weights = np.array(list(weights.values()))
        self.bias = bias

    def predict_proba(self, X) -> np.ndarray:
        z = np.asarray(X, dtype=np.float64)[:, self.index] @ self.weights + self.bias
        p = 1.0 / (1.0 + np.exp(-z))
        return np.column_stack([1.0 - p, p])


def fingerprint(values: np.ndarray) -> list[float]:
    """Sum and a pseudo-randomly weighted sum of a column: a changed or moved value shows."""
    v = np.asarray(values, dtype=np.float64)
    w = np.random.default_rng(0).uniform(0.5, 1.5, len(v))
    return [float(v.sum()), float(v @ w)]


def _records(frame: pd.DataFrame) -> list[dict]:
    return json.loads(frame.to_json(orient="records", date_format="iso", double_precision=15))


def _frame(records: list[dict], dates: tuple[str, ...] = ()) -> pd.DataFrame:
    frame = pd.DataFrame(records)
    for column in dates:
        frame[column] = pd.to_datetime(frame[column]).dt.tz_localize(None)
    return frame


def load_inputs(ref: dict) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Transfers, open invoices, payer observations and habit observations of the reference."""
    inputs = ref["inputs"]
    habits = _frame(inputs["habits"]).astype({"rank_old": "int64", "rank_new": "int64"})
    return (
        _frame(inputs["transfers"], ("booking_date",)),
        _frame(inputs["invoices"], ("issue_date", "due_date")),
        _frame(inputs["observations"]),
        habits,
    )


def observe(m, transfers, invoices, observations, habits) -> dict:
    """What the reference records, computed with the matching package `m` (a module)."""
    from importlib import import_module

    knowledge = import_module(f"{m.__name__}.knowledge")
    candidates = import_module(f"{m.__name__}.candidates")
    prepared = import_module(f"{m.__name__}.prepared")
    features = import_module(f"{m.__name__}.features")
    assembly = import_module(f"{m.__name__}.assembly")
    config_module = import_module(f"{m.__name__}.config")
    trained = import_module(f"{m.__name__}.trained")
    params = candidates.BlockingParams(**BLOCKING)
    payer = knowledge.payer_map(knowledge.combine([observations]))
    table = knowledge.habit_table(knowledge.combine_habits([habits]))
    p = prepared.prepare(transfers, invoices)
    pairs = candidates.candidate_pairs(p, payer, params)
    X = features.pair_features(p, pairs, payer, params, table)
    flags = pairs[candidates.FLAG_COLUMNS].to_numpy(np.int64) << np.arange(
        len(candidates.FLAG_COLUMNS)
    )
    config = config_module.MatcherConfig(**BLOCKING)
    matcher = trained.TrainedMatcher(
        config,
        Logistic(list(features.FEATURES), PAIR_WEIGHTS, -4.0),
        Logistic(list(assembly.SET_FEATURES), SET_WEIGHTS, -3.0),
        THRESHOLD,
        observations,
        {},
        habits,
    )
    predicted = matcher.predict(transfers, invoices)
    return {
        "pairs": {
            "t": pairs["t"].tolist(),
            "i": pairs["i"].tolist(),
            "flags": flags.sum(axis=1).tolist(),
        },
        "features": {c: fingerprint(X[c].to_numpy()) for c in X.columns},
        "prediction": {
            "transfer_id": predicted["transfer_id"].astype(str).tolist(),
            "invoice_id": [None if pd.isna(v) else str(v) for v in predicted["invoice_id"]],
            "amount": predicted["amount"].tolist(),
            "confidence": predicted["confidence"].tolist(),
            "decision": predicted["decision"].tolist(),
            "pair_score": predicted["pair_score"].tolist(),
        },
    }


@pytest.fixture(scope="module")
def reference() -> dict:
    with gzip.open(REFERENCE, "rt") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def observed(reference) -> dict:
    import cashmatch.domain.matching

    return observe(cashmatch.domain.matching, *load_inputs(reference))


def test_the_same_candidate_pairs_with_the_same_rules(reference, observed):
    assert len(reference["expected"]["pairs"]["t"]) > 1000  # a real month, not a toy
    assert observed["pairs"] == reference["expected"]["pairs"]


def test_the_same_features(reference, observed):
    expected = reference["expected"]["features"]
    assert list(observed["features"]) == list(expected)
    for column, values in expected.items():
        assert observed["features"][column] == pytest.approx(values, rel=1e-6, abs=1e-4), column


def test_the_same_answers(reference, observed):
    expected = reference["expected"]["prediction"]
    got = observed["prediction"]
    for column in ("transfer_id", "invoice_id", "decision", "amount"):
        assert got[column] == expected[column], column
    for column in ("confidence", "pair_score"):
        assert got[column] == pytest.approx(expected[column], rel=1e-9, abs=1e-12), column
    assert {"auto", "review"} <= set(expected["decision"])  # both decisions are exercised


def test_ranked_candidates_come_from_the_same_prediction(reference):
    from cashmatch.domain.matching import MatcherConfig, TrainedMatcher
    from cashmatch.domain.matching.assembly import SET_FEATURES
    from cashmatch.domain.matching.features import FEATURES

    transfers, invoices, observations, habits = load_inputs(reference)
    matcher = TrainedMatcher(
        MatcherConfig(**BLOCKING),
        Logistic(FEATURES, PAIR_WEIGHTS, -4.0),
        Logistic(SET_FEATURES, SET_WEIGHTS, -3.0),
        THRESHOLD,
        observations,
        {},
        habits,
    )
    predicted, candidates = matcher.predict_with_candidates(transfers, invoices)
    pd.testing.assert_frame_equal(predicted, matcher.predict(transfers, invoices))
    assert list(candidates.columns) == ["transfer_id", "invoice_id", "score", "proposed", "rank"]
    # Every pair the answer was chosen from is listed once, ranked by score within its
    # transfer; invoices a transfer booked earlier closed are no longer candidates of later ones.
    blocked = reference["expected"]["pairs"]
    ids = transfers["transfer_id"].astype(str).to_numpy(), invoices["invoice_id"].astype(str)
    blocked_ids = set(zip(ids[0][blocked["t"]], ids[1].to_numpy()[blocked["i"]], strict=True))
    listed = set(zip(candidates["transfer_id"], candidates["invoice_id"], strict=True))
    assert len(listed) == len(candidates) and listed <= blocked_ids
    assert len(candidates) > len(blocked_ids) / 2
    for _, group in candidates.groupby("transfer_id", sort=False):
        assert group["rank"].tolist() == list(range(1, len(group) + 1))
        assert group["score"].is_monotonic_decreasing
    # The proposed candidates are exactly the predicted sets, with the same pair scores.
    chosen = predicted[predicted["invoice_id"].notna()]
    proposed = candidates[candidates["proposed"]]
    key = ["transfer_id", "invoice_id"]
    merged = chosen.merge(proposed, on=key, how="outer", indicator=True)
    assert (merged["_merge"] == "both").all()
    assert merged["pair_score"].to_numpy() == pytest.approx(merged["score"].to_numpy())


def record() -> None:
    """Record the reference with the matching package on sys.path (synthetic inputs)."""
    import cashmatch.domain.matching
    from cashmatch.domain.matching import knowledge, month_batches
    from cashmatch.synth import SynthConfig, generate

    data = generate(SynthConfig(months=4, scale=0.15, seed=11, profile="messy"))
    batches = month_batches(data.invoices, data.transfers, data.matches)
    *history, month = batches
    observations = knowledge.combine(knowledge.observations(b) for b in history)
    habits = knowledge.combine_habits(knowledge.habit_observations(b) for b in history)
    ref = {
        "inputs": {
            "transfers": _records(month.transfers),
            "invoices": _records(month.invoices),
            "observations": _records(observations),
            "habits": _records(habits),
        }
    }
    ref["expected"] = observe(cashmatch.domain.matching, *load_inputs(ref))
    REFERENCE.parent.mkdir(exist_ok=True)
    with gzip.open(REFERENCE, "wt") as f:
        json.dump(ref, f)


if __name__ == "__main__" and "--record" in sys.argv:
    record()
