"""The champion decision: promote a candidate only when it clearly earns it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class QualityGates(BaseModel):
    """The evaluator's thresholds: how a candidate earns promotion."""

    model_config = ConfigDict(frozen=True)

    primary_metric: str = "auto_rate@99"
    min_gain: float = Field(
        0.002, ge=0.0, le=1.0, description="how much the candidate must beat the champion by"
    )
    guard_metrics: tuple[str, ...] = ("exact_set_accuracy", "pair_f1")
    max_guard_regression: float = Field(0.005, ge=0.0, le=1.0)
    floor_auto_rate: float = Field(0.30, ge=0.0, le=1.0, description="absolute floor, first model")
    floor_exact_set_accuracy: float = Field(0.60, ge=0.0, le=1.0)


def decide(
    candidate: dict[str, float], champion: dict[str, float] | None, gates: QualityGates
) -> tuple[bool, list[str]]:
    """(passed, reasons in words). The first model passes absolute floors; later ones must beat
    the champion's primary metric by `min_gain` with no guard metric regressing beyond tolerance."""
    primary = gates.primary_metric
    reasons: list[str] = []
    if champion is None:
        floors = {
            "auto_rate@99": gates.floor_auto_rate,
            "exact_set_accuracy": gates.floor_exact_set_accuracy,
        }
        failed = False
        for metric, floor in floors.items():
            value = candidate.get(metric, float("nan"))
            ok = value >= floor
            failed |= not ok
            reasons.append(f"{metric} {value:.4f} {'≥' if ok else '<'} floor {floor:.4f}")
        head = "no champion yet: " + (
            "fails an absolute floor" if failed else "passes the absolute floors"
        )
        return not failed, [head, *reasons]

    gain = candidate[primary] - champion[primary]
    passed = gain >= gates.min_gain
    reasons.append(
        f"{primary} {candidate[primary]:.4f} vs champion {champion[primary]:.4f}: "
        f"gain {gain:+.4f} {'≥' if passed else '<'} required {gates.min_gain:.4f}"
    )
    for metric in gates.guard_metrics:
        drop = champion[metric] - candidate[metric]
        ok = drop <= gates.max_guard_regression
        passed &= ok
        reasons.append(
            f"guard {metric} {candidate[metric]:.4f} vs {champion[metric]:.4f}"
            + ("" if ok else f": regresses by {drop:.4f} > {gates.max_guard_regression:.4f}")
        )
    return passed, [("beats the champion" if passed else "does not beat the champion"), *reasons]
