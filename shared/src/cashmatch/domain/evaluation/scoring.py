"""Score a model (or the rules baseline) on a dataset slice, month by month."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from cashmatch.domain.dataset.slices import Slice
from cashmatch.domain.matching import MonthBatch, evaluate, rules_baseline

Predictor = Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]


def batches(part: Slice) -> list[MonthBatch]:
    """One MonthBatch per month of a slice (each month keeps its own open-invoice pool)."""
    result = []
    for month in part.months():
        rows = part.for_month(month)
        result.append(
            MonthBatch(
                month=month,
                transfers=rows.transfers.drop(columns="month").reset_index(drop=True),
                invoices=rows.invoices.drop(columns="month").reset_index(drop=True),
                matches=rows.matches.drop(columns="month").reset_index(drop=True),
            )
        )
    return result


def predict_slice(predict: Predictor, part: Slice) -> pd.DataFrame:
    """Predictions for every transfer of a slice, each month against its own pool."""
    frames = [predict(b.transfers, b.invoices) for b in batches(part)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def score(predict: Predictor, part: Slice, target_precision: float = 0.99) -> dict[str, float]:
    """The design's metrics of `predict` on a labelled slice."""
    predictions = predict_slice(predict, part)
    return evaluate(predictions, part.transfers, part.matches, target_precision)


def score_rules(part: Slice) -> dict[str, float]:
    """The rules baseline's metrics on the same slice."""
    return score(rules_baseline, part)
