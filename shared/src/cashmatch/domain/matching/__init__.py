"""The matching model: which open invoices a bank transfer pays, how much each, how sure.

Public face: `MonthBatch` and `month_batches` (data), `MatcherConfig`, `train_matcher` and
`TrainedMatcher` (the model, with the `Answer` it gives per transfer), `rules_baseline` (what it
is compared with) and `evaluate` (metrics).
"""

from cashmatch.domain.matching.answers import Answer
from cashmatch.domain.matching.baseline import rules_baseline
from cashmatch.domain.matching.batches import MonthBatch, month_batches
from cashmatch.domain.matching.config import MatcherConfig
from cashmatch.domain.matching.metrics import evaluate
from cashmatch.domain.matching.trained import TrainedMatcher
from cashmatch.domain.matching.training import train_matcher

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
