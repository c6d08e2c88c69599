"""Forest: the flattened walk gives sklearn's probabilities exactly, and refuses what it cannot."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from cashmatch.domain.matching.forest import MAX_CELLS, Forest, flattened


def _fitted(seed: int, **params) -> tuple[HistGradientBoostingClassifier, np.random.Generator]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(3_000, 6)).astype(np.float32)
    X[rng.random(X.shape) < 0.15] = np.nan  # missing values learn a side at every split
    y = np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) * X[:, 2].clip(0, None) > 0.3
    defaults = {"max_iter": 60, "max_leaf_nodes": 31, "random_state": 0}
    model = HistGradientBoostingClassifier(**(defaults | params))
    return model.fit(X, y.astype(int)), rng


@pytest.mark.parametrize("rows", [1, 7, 40, 500])
def test_equals_sklearn_bit_for_bit(rows: int) -> None:
    model, rng = _fitted(1)
    forest = Forest.of(model)
    X = (rng.normal(size=(rows, 6)) * 2).astype(np.float32)
    X[rng.random(X.shape) < 0.2] = np.nan
    X[0, 0] = model._predictors[0][0].nodes["num_threshold"][0]  # exactly on a threshold
    expected = model.predict_proba(X)[:, 1]
    assert np.array_equal(forest.positive_proba(X), expected)
    # The walk itself at every size, also where positive_proba hands large inputs to sklearn.
    assert np.array_equal(forest._raw(X), model._raw_predict(X)[:, 0])
    assert (rows * len(forest.roots) > MAX_CELLS) == (rows == 500)


def test_the_walk_reaches_every_depth() -> None:
    model, rng = _fitted(2, max_leaf_nodes=63, max_iter=20)
    forest = Forest.of(model)
    assert forest.depth == max(t.nodes["depth"].max() for (t,) in model._predictors)
    X = rng.normal(size=(50, 6)).astype(np.float32)
    assert np.array_equal(forest._raw(X), model._raw_predict(X)[:, 0])


def test_refuses_what_it_cannot_reproduce() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(600, 3)).astype(np.float32)
    three = HistGradientBoostingClassifier(max_iter=5).fit(X, rng.integers(0, 3, 600))
    with pytest.raises(ValueError, match="binary"):
        Forest.of(three)
    X[:, 2] = rng.integers(0, 4, 600)
    categorical = HistGradientBoostingClassifier(max_iter=5, categorical_features=[2])
    categorical.fit(X, (X[:, 2] == 1).astype(int))
    with pytest.raises(ValueError, match="categorical"):
        Forest.of(categorical)


def test_a_wrong_width_is_an_error() -> None:
    forest = Forest.of(_fitted(4)[0])
    with pytest.raises(ValueError, match="6 features"):
        forest.positive_proba(np.zeros((2, 5), dtype=np.float32))


def test_flattened_keeps_what_it_cannot_flatten() -> None:
    model = _fitted(5)[0]
    assert isinstance(flattened(model), Forest)
    stand_in = object()
    assert flattened(stand_in) is stand_in
