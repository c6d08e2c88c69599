"""The champions' history month by month, read from the registry's records and verdicts."""

from __future__ import annotations

from cashmatch.service_layer.registry import ModelRegistry
from cashmatch.service_layer.reporting.evaluation import HistoryRow


def champion_history(registry: ModelRegistry) -> list[HistoryRow]:
    """(month, champion version, its frozen-test-set metrics) after each month's verdict.

    A model trained on data up to month M is judged in M; after that verdict the champion is the
    model itself when it passed, else the champion it was compared with. Months without a judged
    model are absent; a month judged twice keeps its last verdict.
    """
    by_month: dict[str, str] = {}
    for record in registry.versions():  # oldest first: a later verdict wins
        verdict = registry.verdict(record.version)
        if verdict is None or not record.training_months:
            continue
        champion = record.version if verdict.passed else verdict.champion_version
        if champion is not None:
            by_month[max(record.training_months)] = champion
    rows: list[HistoryRow] = []
    for month in sorted(by_month):
        version = by_month[month]
        judged = registry.verdict(version)
        if judged is not None:
            rows.append((month, version, judged.metrics))
    return rows
