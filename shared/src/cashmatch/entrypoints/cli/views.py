"""What the commands show, as plain data: the objects `--json` prints and the tables are made of
(the delivery and model shapes live in `service_layer/overview.py`, which the console reads too).

One function per kind of object, so every command that shows a delivery or a model shows it the
same way. The shapes are stable: fields may be added, none is renamed or removed. Ids are whole
(a table shows their first 8 characters); times are ISO 8601; a missing number is null.

delivery (`events --json`, `dead-letters --json`, the "events" of `status --json`):
    message_id, topic, month (YYYY-MM or null), subscription (the service, null for a message no
    service takes), state (published | pending | leased | done | retrying | dead), attempts,
    detail (what the service made of it, whole), published_at, updated_at, attributes

model (`models --json`, the "models" of `status --json`):
    version, dataset_version, training_months (list of YYYY-MM), artifact_digest,
    verdict (passed | rejected | pending), why (its first reason), reasons (all of them),
    auto_rate@99, exact_set_accuracy, rules_auto_rate@99 (numbers on the frozen test set),
    report (URI of the evaluation report), champion, deployed (booleans), endpoint (where it
    serves, when deployed)

quarantined row (`quarantine --json`): month, table, key, reason
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from cashmatch.service_layer import overview

delivery = overview.delivery  # a message and what one subscriber made of it
models = overview.models  # every version, oldest first, with its verdict and role


def months_span(months: list[str]) -> str:
    """A list of months for a table cell: first..last."""
    return f"{months[0]}..{months[-1]}" if months else "–"


def role(model: dict[str, Any]) -> str:
    """champion, deployed, both or neither, for a table cell."""
    return " ".join(r for r in ("champion", "deployed") if model[r])


def quarantined(rows: pd.DataFrame, month: str) -> list[dict[str, Any]]:
    """The rows the collector set aside for `month`, by table and key, with the reason."""
    return [
        {"month": month, "table": str(t), "key": str(k), "reason": str(r)}
        for t, k, r in rows[["table", "key", "reason"]].itertuples(index=False)
    ]
