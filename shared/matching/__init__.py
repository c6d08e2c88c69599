"""The matching model: which open invoices a bank transfer pays, how much each, how sure.

Public face: `MonthBatch` and `month_batches` (data), `MatcherConfig`, `train_matcher` and
`TrainedMatcher` (the model, with the `Answer` it gives per transfer), `rules_baseline` (what it
is compared with) and `evaluate` (metrics).
"""

from shared.matching.baseline import rules_baseline
from shared.matching.batches import MonthBatch, month_batches
from shared.matching.metrics import evaluate
from shared.matching.model import Answer, MatcherConfig, TrainedMatcher, train_matcher

__all__ = [
    "Answer",
    "MatcherConfig",
    "MonthBatch",
    "TrainedMatcher",
    "evaluate",
    "month_batches",
    "rules_baseline",
    "train_matcher",
]
