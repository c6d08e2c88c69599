"""`candidates.Columns`: the named arrays requests and candidate pairs travel in."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cashmatch.domain.matching.tables import Columns


def _pairs() -> Columns:
    return Columns(
        {
            "t": np.array([0, 0, 1, 2], dtype=np.int64),
            "i": np.array([3, 5, 4, 3], dtype=np.int64),
            "by_amount": np.array([1, 0, 1, 1], dtype=np.uint8),
        }
    )


def test_take_selects_rows_by_mask_or_position_like_a_frame():
    pairs = _pairs()
    frame = pd.DataFrame({name: pairs[name] for name in pairs.columns})
    mask = np.array([True, False, False, True])

    by_mask = pairs.take(mask)
    expected = frame[mask].reset_index(drop=True)
    assert len(by_mask) == 2 and by_mask.columns == ["t", "i", "by_amount"]
    for name in pairs.columns:
        np.testing.assert_array_equal(by_mask[name], expected[name].to_numpy())
        assert by_mask[name].dtype == pairs[name].dtype

    by_position = pairs.take(np.array([3, 0]))
    np.testing.assert_array_equal(by_position["i"], [3, 3])
    np.testing.assert_array_equal(by_position["t"], [2, 0])


def test_to_numpy_stacks_the_columns_in_order_like_a_frame():
    pairs = _pairs()
    frame = pd.DataFrame({name: pairs[name] for name in pairs.columns})
    stacked = pairs.to_numpy(np.int64)
    assert stacked.dtype == np.int64 and stacked.shape == (4, 3)
    np.testing.assert_array_equal(stacked, frame.to_numpy(np.int64))
    assert pairs.take(np.zeros(4, dtype=bool)).to_numpy(np.int64).shape == (0, 3)
    assert Columns({}).to_numpy(np.int64).shape == (0, 0)


def test_columns_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="different lengths"):
        Columns({"t": np.arange(3), "i": np.arange(2)})
