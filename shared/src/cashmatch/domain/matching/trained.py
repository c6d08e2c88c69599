"""The trained matcher: both models, learned payer knowledge and the auto threshold, and the
prediction entry points (frames for batches, `Answer`s for services)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

import cashmatch.domain.matching.knowledge as knowledge
from cashmatch.domain.matching.answers import (
    Answer,
    answers_of,
    chosen_reasons,
    decisions_at,
    ranked_candidates,
)
from cashmatch.domain.matching.batches import MonthBatch
from cashmatch.domain.matching.candidates import candidate_columns
from cashmatch.domain.matching.chunked import (
    Chunk,
    ChunkFailed,
    day_chunks,
    in_input_order,
    take_rows,
)
from cashmatch.domain.matching.config import MatcherConfig
from cashmatch.domain.matching.estimators import Model, prediction_threads
from cashmatch.domain.matching.features import pair_features
from cashmatch.domain.matching.forest import flattened
from cashmatch.domain.matching.indexes import HabitIndex, PayerIndex
from cashmatch.domain.matching.output import assemble_output
from cashmatch.domain.matching.prepared import Prepared, prepare
from cashmatch.domain.matching.scoring import Scored, score_input
from cashmatch.domain.matching.serialize import MatcherParts, dump_matcher, load_matcher
from cashmatch.domain.matching.settlement import (
    Books,
    Decision,
    FirstPass,
    decide,
    first_pass,
    settle,
)
from cashmatch.domain.matching.tables import Columns, Table, as_frame, with_open_amount


def _stacked(tables: list[Table]) -> Table:
    """The rows of several requests' tables, one after another."""
    if all(isinstance(table, Columns) for table in tables):
        return Columns.concat(tables)  # type: ignore[arg-type]
    return pd.concat([as_frame(table) for table in tables], ignore_index=True)


@dataclass
class MonthPlan:
    """A month to match chunk by chunk (`TrainedMatcher.plan`)."""

    base: Prepared  # every transfer of the month and its open invoices, typed once
    chunks: list[Chunk]
    payer: PayerIndex
    habits: HabitIndex

    def books(self) -> Books:
        """Both settlement sweeps before the month's first chunk."""
        return Books.at_start(self.base.i_open)


FirstPasses = Callable[["TrainedMatcher", MonthPlan], Iterable[FirstPass]]


def in_turn(model: TrainedMatcher, plan: MonthPlan) -> Iterator[FirstPass]:
    """The chunks' first passes one after another, each computed when the settling needs it
    (one chunk's pairs in memory at a time)."""
    for c in plan.chunks:
        try:
            f = model.first_pass(plan, c)
        except Exception as exc:
            raise ChunkFailed(c.key, exc) from exc
        yield f


class TrainedMatcher:
    """A trained matcher: predicts invoice sets, allocations, confidences and decisions."""

    def __init__(
        self,
        config: MatcherConfig,
        pair_model: HistGradientBoostingClassifier,
        set_model: HistGradientBoostingClassifier,
        threshold: float,
        observations: pd.DataFrame,
        training_metrics: dict[str, float],
        habits: pd.DataFrame | None = None,
    ) -> None:
        self.config = config
        self.pair_model = pair_model
        self.set_model = set_model
        self.threshold = float(threshold)
        self.observations = observations
        self.training_metrics = dict(training_metrics)
        self.habits = habits if habits is not None else knowledge.empty_habits()
        # Lookups of the model's own knowledge, built on first use (not part of the model file).
        self._own_knowledge: tuple[pd.DataFrame, pd.DataFrame, PayerIndex, HabitIndex] | None = None
        self._own_forests: tuple[object, object, Model, Model] | None = None

    def at_threshold(self, threshold: float) -> TrainedMatcher:
        """The same model deciding "auto" at another threshold (the guardrail's override).

        A shallow copy: estimators and knowledge are shared, read-only, and so are the lookups
        already built; only the cut between auto and review differs.
        """
        other = copy.copy(self)
        other.threshold = float(threshold)
        return other

    def predict(
        self,
        transfers: pd.DataFrame,
        invoices: pd.DataFrame,
        history: list[MonthBatch] | None = None,
        *,
        chunk: int | None = None,
        first_passes: FirstPasses | None = None,
    ) -> pd.DataFrame:
        """One row per predicted (transfer, invoice) pair; a transfer paying nothing: one NA row.

        `history` adds labelled months (before these transfers) to what the model already knows
        about which payer pays for which counterparty. `chunk`: match whole booking days of
        about this many transfers at a time (`chunked.py`; the same rows, less memory); None:
        all at once. `first_passes` computes the chunks' first passes, in chunk order (the
        "map": `in_turn` here, one at a time; parallel workers elsewhere); settling them in
        booking order (the "reduce") happens here. `ChunkFailed` names a chunk that failed.
        """
        plan = self.plan(transfers, invoices, history, chunk)
        books = plan.books()
        frames, rows = [], []
        passes = (first_passes or in_turn)(self, plan)
        try:
            for c, f in zip(plan.chunks, passes, strict=True):
                try:
                    frame, chunk_rows = self.settle_chunk(f, books)
                except Exception as exc:  # whatever it is, it is reported by chunk key
                    raise ChunkFailed(c.key, exc) from exc
                frames.append(frame)
                rows.append(c.positions[chunk_rows])
        finally:
            # A month that failed stops the chunks still being computed now, not when the
            # generator is collected (Ray may be gone by then).
            close = getattr(passes, "close", None)
            if close is not None:
                close()
        return in_input_order(frames, rows)

    def plan(
        self,
        transfers: pd.DataFrame,
        invoices: pd.DataFrame,
        history: list[MonthBatch] | None,
        chunk: int | None,
    ) -> MonthPlan:
        """A month cut into chunks, with what every chunk reads: invoices and payer knowledge."""
        payer, habits = self._knowledge(history)
        base = prepare(transfers, invoices)
        return MonthPlan(base, day_chunks(base.t_day, chunk), payer, habits)

    def first_pass(self, plan: MonthPlan, chunk: Chunk) -> FirstPass:
        """A chunk's blocking, features, pair scores and options: independent of other chunks."""
        p = plan.base.with_transfers(take_rows(as_frame(plan.base.transfers), chunk.positions))
        params = self.config.blocking()
        with prediction_threads(self.config):
            pairs = Columns(candidate_columns(p, plan.payer, params))
            X = pair_features(p, pairs, plan.payer, params, plan.habits)
            s = Scored(p, pairs, X, payer=plan.payer, habits=plan.habits)
            return first_pass(*self._forests(), self.config, s)

    def settle_chunk(self, f: FirstPass, books: Books) -> tuple[pd.DataFrame, np.ndarray]:
        """A chunk's `predict` rows, settled after the chunks before it (`books`, updated), and
        for each row the chunk's transfer position it belongs to."""
        with prediction_threads(self.config):
            d = settle(*self._forests(), self.config, f, books)
        sizes = [max(1, len(d.members[b])) for b in d.best.tolist()]
        return self._output(d), np.repeat(np.arange(len(sizes)), sizes)

    def predict_with_candidates(
        self,
        transfers: pd.DataFrame,
        invoices: pd.DataFrame,
        history: list[MonthBatch] | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """`predict`'s frame, and every candidate the model scored, from one prediction.

        The second frame has one row per scored (transfer, invoice) pair: `transfer_id`,
        `invoice_id`, `score` (the pair model's, as `pair_score`), `proposed` (in the predicted
        set) and `rank` (1 = best score of its transfer), ordered by transfer, then rank.
        Invoices blocking never paired with a transfer are not listed, nor those a transfer
        booked earlier in the same call already closed.
        """
        d = self._run(transfers, invoices, history)
        return self._output(d), ranked_candidates(d)

    def answers(self, transfers: Table, invoices: Table) -> list[Answer]:
        """One `Answer` per transfer, in the order of `transfers`: what a service hands out.

        The same prediction as `predict_with_candidates`, without building its frames.
        """
        return answers_of(self._run(transfers, invoices, None), self.threshold)

    def answers_many(self, requests: Sequence[tuple[Table, Table]]) -> list[list[Answer]]:
        """`answers` for independent requests (transfers, their open invoices) in one prediction.

        Each request is blocked against its own invoices only; features, both models and
        settlement then run once for all of them, which is what makes many small requests
        cheap. Every answer equals that of its request alone: a transfer's features depend on
        its own candidates only, and no request's invoices are candidates of another's.
        """
        if not requests:
            return []
        payer, habits = self._knowledge(None)
        params = self.config.blocking()
        with prediction_threads(self.config):
            # Pair positions of each request move by the rows of the requests before it.
            parts, t0, i0 = [], 0, 0
            for transfers, invoices in requests:
                found = candidate_columns(prepare(transfers, invoices), payer, params)
                parts.append(Columns({**found, "t": found["t"] + t0, "i": found["i"] + i0}))
                t0, i0 = t0 + len(transfers), i0 + len(invoices)
            pairs = Columns.concat(parts)
            p = prepare(
                _stacked([t for t, _ in requests]),
                # each request's own: one without open amounts must not get NaN ones when stacked
                _stacked([with_open_amount(i) for _, i in requests]),
            )
            X = pair_features(p, pairs, payer, params, habits)
            s = Scored(p, pairs, X, payer=payer, habits=habits)
            d = decide(*self._forests(), self.config, s)
        answers = answers_of(d, self.threshold)
        bounds = np.cumsum([0, *(len(t) for t, _ in requests)])
        return [answers[a:b] for a, b in itertools.pairwise(bounds)]

    def _knowledge(self, history: list[MonthBatch] | None) -> tuple[PayerIndex, HabitIndex]:
        """Payer and habit lookups: the model's own ones are built once, not per request."""
        if history:
            return _knowledge_indexes(
                [self.observations, *map(knowledge.observations, history)],
                [self.habits, *map(knowledge.habit_observations, history)],
            )
        own = self._own_knowledge
        if own is None or own[0] is not self.observations or own[1] is not self.habits:
            indexes = _knowledge_indexes([self.observations], [self.habits])
            own = (self.observations, self.habits, *indexes)
            self._own_knowledge = own  # one assignment: concurrent requests see all or nothing
        return own[2], own[3]

    def _forests(self) -> tuple[Model, Model]:
        """Both models flattened for small inputs (see forest.py), built once."""
        own = self._own_forests
        if own is None or own[0] is not self.pair_model or own[1] is not self.set_model:
            pair, set_ = self.pair_model, self.set_model
            own = (pair, set_, flattened(pair), flattened(set_))
            self._own_forests = own  # one assignment: concurrent requests see all or nothing
        return own[2], own[3]

    def _run(self, transfers: Table, invoices: Table, history: list[MonthBatch] | None) -> Decision:
        """The settled prediction `predict` and `answers` read."""
        payer, habits = self._knowledge(history)
        with prediction_threads(self.config):
            s = score_input(transfers, invoices, payer, self.config, habits=habits)
            return decide(*self._forests(), self.config, s)

    def _output(self, d: Decision) -> pd.DataFrame:
        """`predict`'s frame of a settled prediction."""
        i_pos = d.s.pairs["i"]
        chosen = [i_pos[d.members[b]] for b in d.best]
        pair_scores = [d.scores[d.members[b]] for b in d.best]
        decisions = decisions_at(d.conf, self.threshold)
        return assemble_output(
            d.s.prepared, chosen, d.conf, decisions, pair_scores, chosen_reasons(d)
        )

    def to_bytes(self) -> bytes:
        """The model as a zip of skops estimators, JSON metadata and parquet data; no pickle."""
        return dump_matcher(
            MatcherParts(
                self.config,
                self.pair_model,
                self.set_model,
                self.threshold,
                self.observations,
                self.training_metrics,
                self.habits,
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainedMatcher:
        """Load a model written by to_bytes; ValueError on anything unexpected or tampered."""
        parts = load_matcher(data)
        return cls(
            parts.config,
            parts.pair_model,
            parts.set_model,
            parts.threshold,
            parts.observations,
            parts.training_metrics,
            parts.habits,
        )


def _knowledge_indexes(
    observations: list[pd.DataFrame], habits: list[pd.DataFrame]
) -> tuple[PayerIndex, HabitIndex]:
    """Payer and habit lookups from observation and habit tables (the model's, and history's)."""
    return (
        PayerIndex.of(knowledge.payer_map(knowledge.combine(observations))),
        HabitIndex.of(knowledge.habit_table(knowledge.combine_habits(habits))),
    )
