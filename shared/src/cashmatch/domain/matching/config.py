"""The matcher's hyper-parameters (`MatcherConfig`), stored with every trained model."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from cashmatch.domain.matching.candidates import BlockingParams


@dataclass
class MatcherConfig:
    """Hyper-parameters of the matcher; the defaults are meant to be sensible for real data."""

    target_precision: float = 0.99  # share of auto-settled answers that must be exactly right
    seed: int = 0
    # Largest bank fee (currency units) and early-payment discount (fraction) a payer may take off.
    max_fee: float = 30.0
    max_discount: float = 0.05
    # Blocking caps: keys, amounts or name tokens shared by more invoices than this say too little.
    max_key_invoices: int = 40
    max_amount_invoices: int = 25
    max_name_token_cps: int = 5
    max_candidates: int = 60
    # Share of obviously wrong candidate pairs the pair model learns from (not weighted back up).
    easy_negative_rate: float = 0.1
    # Extra precision demanded on the calibration months, against their sampling noise.
    threshold_margin: float = 0.002
    # Never settle an answer the model itself rates below this, however well the calibration
    # months went: a drifting month hits the least sure answers first. The calibration months
    # come from the training world, where the set model is under-confident (answers rated
    # 0.5-0.9 are mostly right), so the cut chosen there falls to this floor; in worlds the model
    # was not trained on the same ratings are roughly honest and 1 in 3 of them is wrong
    # (benchmarks/auto_errors.py). 0.95 kept every benchmark world at >= 99.4%; 0.5 let 1.5-3%
    # wrong answers through outside the training world.
    min_threshold: float = 0.95
    calibration_months: int = 2
    n_folds: int = 2
    pair_max_iter: int = 100
    pair_learning_rate: float = 0.12
    pair_max_leaf_nodes: int = 31
    set_max_iter: int = 150
    set_learning_rate: float = 0.05
    set_max_leaf_nodes: int = 15
    # Threads for the estimators. One by default: a shared or busy machine makes OpenMP's
    # threads wait on each other, which costs far more than the parallelism gains.
    n_threads: int = 1
    # Payer observations kept in the model (the newest), so the model file stays bounded.
    max_observations: int = 500_000
    # Transfers of one month the models are fitted on: a stable sample (by transfer id) of a
    # larger month. Payer knowledge and habits still learn from every label and the calibration
    # months are judged in full; only the fitting cost stops growing with the month's size.
    max_fit_transfers_per_month: int = 10_000

    def blocking(self) -> BlockingParams:
        """The blocking caps as the candidate generator takes them."""
        return BlockingParams(
            max_fee=self.max_fee,
            max_discount=self.max_discount,
            max_key_invoices=self.max_key_invoices,
            max_amount_invoices=self.max_amount_invoices,
            max_name_token_cps=self.max_name_token_cps,
            max_candidates=self.max_candidates,
        )

    def to_dict(self) -> dict:
        """Plain JSON-able dict of the configuration."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MatcherConfig:
        """Configuration from a dict; unknown keys are an error."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown MatcherConfig fields: {sorted(unknown)}")
        return cls(**data)
