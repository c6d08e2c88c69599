"""Small inputs through a gradient-boosting model without sklearn's per-tree Python loop.

`HistGradientBoostingClassifier.predict_proba` validates its input and then calls every tree
in turn from Python; for one transfer's twenty candidate pairs that loop, not the trees, is the
cost (~0.5 ms for 100 trees). `Forest` flattens all trees of a fitted binary classifier into
node arrays and walks every (row, tree) at once, one tree level per numpy step. The walk makes
the same comparisons sklearn makes (float64 values, `<=` the threshold, NaN to the side the
node learned), sums the leaf values onto the same baseline in the trees' order and applies the
same `expit`, so the probabilities are equal bit for bit (tests/unit/test_matching_forest.py).
Large inputs go to sklearn, whose compiled per-tree loop is faster there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from sklearn.ensemble import HistGradientBoostingClassifier

# (rows × trees) walked at once at most; above it sklearn is faster (measured on the default
# matcher's models: equal at ~6,000, 3× slower at 50,000, 2-6× faster at 800-2,000).
MAX_CELLS = 4_096


@dataclass(frozen=True, eq=False)
class Forest:
    """The trees of one fitted binary `HistGradientBoostingClassifier`, as flat node arrays.

    Node k of the flattened forest goes to `left[k]` or `right[k]` (its own index for a
    leaf, so extra steps leave a finished walk where it is) by feature `feature[k]`.
    """

    model: HistGradientBoostingClassifier
    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    depth: int
    baseline: float

    @classmethod
    def of(cls, model: HistGradientBoostingClassifier) -> Forest:
        """Flatten a fitted model; ValueError for one this walk does not reproduce exactly."""
        trees = [p for iteration in model._predictors for p in iteration]
        if model.n_trees_per_iteration_ != 1 or model._baseline_prediction.size != 1:
            raise ValueError("only a binary classifier (one tree per iteration) is flattened")
        nodes = [tree.nodes for tree in trees]
        if any(n["is_categorical"].any() for n in nodes):
            raise ValueError("categorical splits are not flattened")
        sizes = np.array([len(n) for n in nodes], dtype=np.intp)
        roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        flat = np.concatenate(nodes)
        own = np.arange(len(flat), dtype=np.intp)
        shift = np.repeat(roots, sizes)
        leaf = flat["is_leaf"].astype(bool)
        return cls(
            model=model,
            left=np.where(leaf, own, flat["left"].astype(np.intp) + shift),
            right=np.where(leaf, own, flat["right"].astype(np.intp) + shift),
            feature=np.where(leaf, 0, flat["feature_idx"]).astype(np.intp),
            threshold=flat["num_threshold"].astype(np.float64),
            missing_left=flat["missing_go_to_left"].astype(bool),
            value=flat["value"].astype(np.float64),
            roots=roots,
            depth=int(max(n["depth"].max() for n in nodes)),
            baseline=float(model._baseline_prediction.ravel()[0]),
        )

    def positive_proba(self, X: np.ndarray) -> np.ndarray:
        """P(class 1) per row of X (float32 as the model was fitted on), like predict_proba."""
        if len(X) * len(self.roots) > MAX_CELLS:
            return self.model.predict_proba(X)[:, 1]
        n_features = self.model.n_features_in_
        if X.ndim != 2 or X.shape[1] != n_features:
            raise ValueError(f"X has shape {X.shape}, the model takes {n_features} features")
        return expit(self._raw(X))

    def _raw(self, X: np.ndarray) -> np.ndarray:
        # sklearn compares float64 values: the same widening of the float32 input.
        values = np.ascontiguousarray(X, dtype=np.float64).ravel()
        n_rows, n_trees = len(X), len(self.roots)
        row_start = (np.arange(n_rows, dtype=np.intp) * X.shape[1])[:, None]
        node = np.broadcast_to(self.roots, (n_rows, n_trees)).copy()
        for _ in range(self.depth):
            x = values[row_start + self.feature[node]]
            go_left = np.where(np.isnan(x), self.missing_left[node], x <= self.threshold[node])
            node = np.where(go_left, self.left[node], self.right[node])
        # cumsum adds left to right like sklearn's loop over trees (a plain sum pairs terms).
        terms = np.empty((n_rows, n_trees + 1))
        terms[:, 0] = self.baseline
        terms[:, 1:] = self.value[node]
        return np.cumsum(terms, axis=1)[:, -1]


def flattened(model: HistGradientBoostingClassifier) -> HistGradientBoostingClassifier | Forest:
    """The model's Forest, or the model itself where a Forest would not equal it."""
    if not isinstance(model, HistGradientBoostingClassifier):
        return model
    try:
        return Forest.of(model)
    except ValueError:
        return model
