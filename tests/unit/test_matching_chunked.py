"""A month matched chunk by chunk (whole booking days at a time) gives the whole month's rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cashmatch.domain.matching import MatcherConfig, MonthBatch, month_batches, train_matcher
from cashmatch.domain.matching.chunked import day_chunks
from cashmatch.domain.matching.toydata import toy_data

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def model():
    d = toy_data(n_months=4, per_month=150, n_counterparties=50, seed=3)
    return train_matcher(
        month_batches(d.invoices, d.transfers, d.matches)[:-1], MatcherConfig(seed=0)
    )


def tiled(batch: MonthBatch, copies: int) -> MonthBatch:
    """`copies` ledgers of one month side by side (ids made distinct; names, accounts, amounts
    and days shared, so blocking finds invoices of other copies too): a big month, quickly."""

    def renamed(frame: pd.DataFrame, k: int, columns: list[str]) -> pd.DataFrame:
        return frame.assign(**{c: frame[c].astype(str) + f"~{k}" for c in columns})

    tr = pd.concat([renamed(batch.transfers, k, ["transfer_id"]) for k in range(copies)])
    inv = pd.concat(
        [renamed(batch.invoices, k, ["invoice_id", "counterparty_id"]) for k in range(copies)]
    )
    # booking order, as the warehouse gives a month (ties: as listed)
    tr = tr.sort_values("booking_date", kind="stable").reset_index(drop=True)
    return MonthBatch(batch.month, tr, inv.reset_index(drop=True))


@pytest.fixture(scope="module")
def big_month() -> MonthBatch:
    d = toy_data(n_months=2, per_month=2000, n_counterparties=400, seed=5)
    month = tiled(month_batches(d.invoices, d.transfers, d.matches)[-1], 10)
    assert len(month.transfers) >= 20_000
    return month


@pytest.fixture(scope="module")
def whole(model, big_month) -> pd.DataFrame:
    return model.predict(big_month.transfers, big_month.invoices)


@pytest.mark.parametrize("size", [1_500, 7_000])
def test_chunks_give_the_whole_months_rows(model, big_month, whole, size):
    days = pd.to_datetime(big_month.transfers["booking_date"]).to_numpy("datetime64[D]")
    chunks = day_chunks(days.astype("int64"), size)
    assert len(chunks) > 2  # several chunks, each carrying the open invoices on
    chunked = model.predict(big_month.transfers, big_month.invoices, chunk=size)
    pd.testing.assert_frame_equal(chunked, whole)


def test_later_chunks_settle_after_the_earlier_ones(model, big_month, whole):
    """The test month needs the carried books: chunks settled each on their own (every invoice
    open again) propose invoices that earlier chunks' transfers already closed."""
    plan = model.plan(big_month.transfers, big_month.invoices, None, 7_000)
    alone = pd.concat(
        [model.settle_chunk(model.first_pass(plan, c), plan.books())[0] for c in plan.chunks],
        ignore_index=True,
    )

    def sets(frame: pd.DataFrame) -> pd.Series:
        return frame.groupby("transfer_id")["invoice_id"].agg(lambda v: frozenset(v.dropna()))

    assert (sets(alone) != sets(whole)).sum() > 10
    paid = alone.dropna(subset=["invoice_id"])
    assert paid.groupby("invoice_id")["transfer_id"].nunique().max() > 1  # paid twice


def test_day_chunks_keep_days_whole_and_in_booking_order():
    days = np.array([3, 1, 1, 2, 5, 5, 5, 4, 2], dtype=np.int64)
    chunks = day_chunks(days, 3)
    assert [c.positions.tolist() for c in chunks] == [[1, 2], [0, 3, 8], [7], [4, 5, 6]]
    assert chunks[0].key == "1970-01-02"
    assert chunks[1].key == "1970-01-03..1970-01-04"
    assert [c.positions.tolist() for c in day_chunks(days, None)] == [list(range(9))]


def test_a_negative_chunk_size_is_refused():
    with pytest.raises(ValueError, match="chunk size must be positive"):
        day_chunks(np.array([1]), -5)
