"""What every path is measured with: one trained model and the requests sent to it.

The model is trained once on 4 small synthetic months and registered twice (v1 and v2, the same
artifact) so that a swap changes only the version an answer names. Single requests carry 50
open invoices, their own and the nearest others by amount, as a matching request would; batch
requests come from a bigger company so that a batch is a month's work.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from typing import Any

from cashmatch.domain.match_api import json_records
from cashmatch.domain.model_records import ModelRecord
from cashmatch.service_layer.registry import ModelRegistry


def train_and_register(registry: ModelRegistry) -> tuple[float, Any]:
    """Train the default matcher on 4 small months; register it as v1 and v2."""
    from cashmatch.domain.matching import month_batches, train_matcher
    from cashmatch.synth import SynthConfig, generate

    data = generate(SynthConfig(months=4, scale=0.2, seed=5))
    batches = month_batches(data.invoices, data.transfers, data.matches)
    started = time.perf_counter()
    model = train_matcher(batches)
    seconds = time.perf_counter() - started
    artifact = model.to_bytes()
    for version in ("v1", "v2"):
        key = f"models/{version}/model.skops.zip"
        registry.blobs.put(key, artifact)
        registry.register(
            ModelRecord(
                version=version,
                model_uri=registry.blobs.uri(key),
                artifact_digest=hashlib.sha256(artifact).hexdigest(),
                dataset_uri="file:///bench",
                dataset_version="bench",
                training_months=sorted({b.month for b in batches}),
                training_metrics=model.training_metrics,
                created_at=dt.datetime.now(dt.UTC),
                caused_by="benchmark",
            )
        )
    return seconds, batches[-1]


def single_bodies(month, count: int = 40, n_invoices: int = 50) -> list[bytes]:
    """Single requests: a transfer, its labelled invoices and the nearest others by amount."""
    transfers = json_records(month.transfers)
    invoices = month.invoices.reset_index(drop=True)
    inv_records = json_records(invoices)
    paid = month.matches.groupby("transfer_id")["invoice_id"].agg(list).to_dict()
    bodies = []
    for transfer in transfers[:count]:
        own = set(paid.get(transfer["transfer_id"], []))
        distance = (invoices["open_amount"] - transfer["amount"]).abs()
        order = [i for i in distance.sort_values().index if invoices.at[i, "invoice_id"] not in own]
        chosen = [i for i in invoices.index if invoices.at[i, "invoice_id"] in own]
        chosen += order[: n_invoices - len(chosen)]
        body = {"transfer": transfer, "open_invoices": [inv_records[i] for i in chosen]}
        bodies.append(json.dumps(body).encode())
    return bodies


def batch_body(n_transfers: int, scale: float) -> tuple[bytes, int]:
    """A batch request from a bigger synthetic company: n transfers vs a month's open invoices."""
    from cashmatch.domain.matching import month_batches
    from cashmatch.synth import SynthConfig, generate

    data = generate(SynthConfig(months=4, scale=scale, seed=9))
    month = month_batches(data.invoices, data.transfers, data.matches)[-1]
    body = {
        "transfers": json_records(month.transfers.iloc[:n_transfers]),
        "open_invoices": json_records(month.invoices),
    }
    return json.dumps(body).encode(), len(month.invoices)
