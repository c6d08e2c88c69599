"""The champion decision: promote a candidate that is significantly better than the champion,
or that is no worse and fresher; refuse one that is significantly worse.

A point-estimate margin over the champion cannot work once the champion saturates the primary
metric (auto_rate@99 = 1.0 leaves nothing to beat), and below saturation it mistakes noise for
gains. So the candidate and champion are compared transfer by transfer on the frozen test set
(`paired.compare`) and the decision reads the intervals; docs/DESIGN.md, "Champion, candidate
and the quality gates", gives the rule and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cashmatch.domain.evaluation.differences import Difference, supports


class QualityGates(BaseModel):
    """The evaluator's thresholds: how a candidate earns promotion."""

    model_config = ConfigDict(frozen=True)

    primary_metric: str = Field(
        "auto_rate@99", description="significantly better on it promotes; worse refuses"
    )
    alpha: float = Field(
        0.05,
        gt=0.0,
        lt=0.5,
        description="significance level of every paired comparison; intervals are 1 − alpha",
    )
    guard_metrics: tuple[str, ...] = ("exact_set_accuracy", "pair_f1")
    max_guard_regression: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="a guard drop up to this size is tolerated even when beyond noise",
    )
    bootstrap_resamples: int = Field(
        2000, ge=200, le=100_000, description="paired bootstrap resamples per comparison"
    )
    bootstrap_seed: int = Field(20240624, description="fixed, so a verdict can be reproduced")
    floor_auto_rate: float = Field(0.30, ge=0.0, le=1.0, description="absolute floor, first model")
    floor_exact_set_accuracy: float = Field(0.60, ge=0.0, le=1.0)

    @field_validator("primary_metric")
    @classmethod
    def _comparable(cls, metric: str) -> str:
        if not supports(metric):
            raise ValueError(f"{metric!r} has no paired comparison (auto_rate@<p>, exact_set_…)")
        return metric

    @field_validator("guard_metrics")
    @classmethod
    def _comparable_guards(cls, metrics: tuple[str, ...]) -> tuple[str, ...]:
        for metric in metrics:
            cls._comparable(metric)
        return metrics

    def compared_metrics(self) -> tuple[str, ...]:
        """The primary metric and the guards, each once: what `paired.compare` must test."""
        return tuple(dict.fromkeys((self.primary_metric, *self.guard_metrics)))


def newer_months(candidate: Sequence[str], champion: Sequence[str]) -> bool:
    """Whether the candidate's training data reaches a later month ("YYYY-MM") than the
    champion's: only then does freshness count for it."""
    return bool(candidate) and (not champion or max(candidate) > max(champion))


def decide(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    gates: QualityGates,
    *,
    comparison: Mapping[str, Difference] | None = None,
    fresher: bool = False,
) -> tuple[bool, list[str]]:
    """(passed, reasons in words). The first model passes absolute floors on `candidate`. A later
    one (`champion` given) is judged on `comparison` (paired differences from `paired.compare`):
    it passes when no guard regresses beyond its noise and the primary metric is significantly
    better, or is tied and the candidate is `fresher` (trained on newer months); significantly
    worse never passes."""
    if champion is None:
        return _first_model(candidate, gates)
    missing = [m for m in gates.compared_metrics() if comparison is None or m not in comparison]
    if missing or comparison is None:
        raise ValueError(f"deciding against a champion needs paired differences of {missing}")
    primary = comparison[gates.primary_metric]
    guards = [(comparison[m], _guard_fails(comparison[m], gates)) for m in gates.guard_metrics]
    failed_guards = [d.metric for d, fails in guards if fails]
    direction = primary.direction
    if direction == "worse":
        passed, head = False, f"refused: significantly worse on {primary.metric}"
    elif failed_guards:
        verb = "regresses beyond its noise" if len(failed_guards) == 1 else "regress beyond noise"
        passed, head = False, f"refused: {', '.join(failed_guards)} {verb}"
    elif direction == "better":
        passed, head = True, f"promoted: significantly better on {primary.metric}"
    elif fresher:
        passed, head = True, "promoted: not significantly worse and trained on newer months"
    else:
        passed = False
        head = "refused: not significantly better and not trained on newer months"
    head = f"{head} ({_evidence(comparison, primary, failed_guards)})"
    reasons = [head, f"primary {primary.words()}: {_direction_words(primary)}"]
    for diff, fails in guards:
        reasons.append(f"guard {diff.words()}: {_guard_words(diff, fails, gates)}")
    reasons.append(
        "trained on newer months than the champion"
        if fresher
        else "not trained on newer months than the champion"
    )
    return passed, reasons


def _evidence(
    comparison: Mapping[str, Difference], primary: Difference, failed_guards: list[str]
) -> str:
    """The statistics behind the head reason, short enough for a table cell: the McNemar counts
    (whatever the primary), the primary's interval, and those of the guards that failed."""
    shown = dict.fromkeys(["exact_set_accuracy", primary.metric, *failed_guards])
    parts = []
    for metric in shown:
        diff = comparison.get(metric)
        if diff is not None:
            parts.append(diff.brief(interval=metric in (primary.metric, *failed_guards)))
    return "; ".join(parts)


def _first_model(candidate: dict[str, float], gates: QualityGates) -> tuple[bool, list[str]]:
    floors = {
        "auto_rate@99": gates.floor_auto_rate,
        "exact_set_accuracy": gates.floor_exact_set_accuracy,
    }
    failed = False
    reasons = []
    for metric, floor in floors.items():
        value = candidate.get(metric, float("nan"))
        ok = value >= floor
        failed |= not ok
        reasons.append(f"{metric} {value:.4f} {'≥' if ok else '<'} floor {floor:.4f}")
    head = "no champion yet: " + (
        "fails an absolute floor" if failed else "passes the absolute floors"
    )
    return not failed, [head, *reasons]


def _guard_fails(diff: Difference, gates: QualityGates) -> bool:
    """A guard blocks when its drop is beyond noise (the whole interval is below zero) and
    larger than the tolerated `max_guard_regression`.

    Significance rather than a fixed non-inferiority margin: a margin test ("the interval's low
    end must stay above −0.005") fails every refresh of a champion whose discordance with its
    successors is wide (a harder profile, a smaller test set), so the champion would again
    never be replaced; a stale champion is a risk of its own.
    """
    return diff.direction == "worse" and -diff.delta > gates.max_guard_regression


def _direction_words(diff: Difference) -> str:
    if diff.direction == "better":
        return "significantly better (the interval is above 0)"
    if diff.direction == "worse":
        return "significantly worse (the interval is below 0)"
    return "no significant difference (the interval contains 0)"


def _guard_words(diff: Difference, fails: bool, gates: QualityGates) -> str:
    if fails:
        return "regresses beyond its noise"
    if diff.direction == "worse":
        return f"a significant drop within the tolerated {gates.max_guard_regression:.4f}"
    return "no regression beyond its noise"
